"""What a person reads: figures (von Mises maps, isodoses, DVHs), a dose result's files and DICOM
RT export, and a study's report (markdown and self-contained HTML)."""
