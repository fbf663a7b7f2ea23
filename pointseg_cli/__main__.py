"""Allow ``python -m pointseg_cli``."""

from pointseg_cli.cli.app import main

if __name__ == "__main__":
    main()
