"""``python -m dmvx``: the same command as the ``dmvx`` console script."""

from dmvx.cli import main

main()
