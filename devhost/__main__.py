"""`python -m devhost demo`: run the connector locally against Azurite and the simulators."""

import sys

from devhost import demo


def main() -> int:
    commands = {"demo": demo.main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: python -m devhost demo [--items N] [--passes N] ...", file=sys.stderr)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
