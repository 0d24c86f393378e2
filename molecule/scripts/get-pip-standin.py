"""Stand-in for the pip bootstrap script ansible-test downloads (get-pip-<version>.py).

Why: ansible-test fetches that script from a host these machines cannot reach. This
stand-in does the same job offline-first: Python's own ensurepip installs a pip into the
empty virtual environment, and that pip then installs the exact packages ansible-test
asked for (pip==<version>, setuptools, wheel) from PyPI, which is reachable.
molecule/scripts/ci.sh copies it into ~/.ansible/test/cache/ under the expected name.
"""

import subprocess
import sys


def main() -> int:
    subprocess.run(
        [sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL
    )
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args]).returncode


if __name__ == "__main__":
    sys.exit(main())
