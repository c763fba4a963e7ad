"""The labs, in order. Each module defines one :class:`~dmvx.lab.model.Lab` as ``LAB``;
its page is ``docs/labs/labN.md`` and its scenario files are ``scenarios/labs/labN-*``."""

from __future__ import annotations

from dmvx.errors import InputError
from dmvx.lab.labs import lab1, lab2, lab3, lab4, lab5, lab6
from dmvx.lab.model import Lab

LABS: tuple[Lab, ...] = (lab1.LAB, lab2.LAB, lab3.LAB, lab4.LAB, lab5.LAB, lab6.LAB)


def get_lab(number: int) -> Lab:
    """Lab ``number``, or an :class:`InputError` listing the labs there are."""
    for lab in LABS:
        if lab.number == number:
            return lab
    raise InputError(f"there is no lab {number}", expected=f"a lab from 1 to {len(LABS)} (see 'dmvx lab list')")
