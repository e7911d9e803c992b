"""The `spinefe` command line: parse arguments, call one library function per command, map errors
to exit codes."""
