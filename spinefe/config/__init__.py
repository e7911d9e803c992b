"""Configuration: the pydantic sections of a segment run (`sections`), reading and validating TOML
(`loading`), the commented default file (`toml`) and the sources its defaults cite (`sources`)."""
