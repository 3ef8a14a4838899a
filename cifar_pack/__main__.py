"""``python -m cifar_pack`` is the ``cifar-pack`` command."""

from .cli import main

main()
