"""Sources: one class per kind of video (file, webcam, network stream), one factory
`open_source`, and what a URL is, decided once up front."""
