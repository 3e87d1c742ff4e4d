"""`python -m dok.launcher …` is the `dok` command."""

from dok.launcher.cli import console_main

if __name__ == "__main__":
    console_main()
