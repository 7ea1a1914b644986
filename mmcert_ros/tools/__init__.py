"""One module per ``mmcert-ros`` subcommand; each is a thin shell over library functions."""
