import sys

from serving.main import main

if __name__ == "__main__":
    sys.exit(main())
