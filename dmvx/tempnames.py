"""Temporary names that libc made up differently in each variant.

``mkstemp``, ``mkdtemp`` and ``tmpfile`` replace the ``XXXXXX`` of a
template with letters drawn from the clock and from the address of a
variable on the stack (glibc 2.36; gnulib's copy does the same). The clock
is replicated, but every variant has its own stack layout -- that is what
address-space diversity is for -- so the letters differ while the program
does the same thing. Compared as they are, the exclusive create that
follows would be a divergence in every program that makes a temporary file.
(When a draw lands in the biased top of its range, about one time in 22,
libc draws again with ``getrandom``: in some variants and not others. That
word draw runs locally, :func:`dmvx.broker.is_word_draw`.)

``mktemp``, ``tmpnam`` and ``tempnam`` draw their letters with
``getrandom`` of one word, which runs locally too, and probe the name with
``lstat`` before handing it back.

Programs draw names of their own too: coreutils' ``mktemp`` fills a
template of any number of X's (ten by default) with gnulib's
``gen_tempname``, and Python's ``tempfile`` draws eight characters of
``[a-z0-9_]``. So the rule knows no template length, only the alphabet of
every one of them (:data:`LETTERS`: letters, digits and ``_``).

Two calls agree *up to a made-up name* when they are the same call that
takes a fresh name -- an exclusive create (``openat`` with
``O_CREAT|O_EXCL``, or ``mkdirat``, exclusive by nature) or the ``lstat``
probe -- every argument but the path is equal, and the two paths are of one
length and differ only inside one run of at least :data:`MIN_RUN` name
characters of their last component: the same directory, the same text
before and after the run. Only the leader runs such a call, so nothing is
created under the follower's name; the follower *adopts* the leader's: its
own path buffer (the caller's template, which libc filled in place) is
overwritten with the leader's letters, as if its libc had drawn them. Every
later use of the name -- ``unlink``, ``rename``, the ``open`` after
``mktemp``, a message that prints it -- is then the leader's in every
variant, and is compared as strictly as any other call.

The price (docs/policy.md, "Temporary names"): the calls carry no
template, so a fixed letter next to the X's (``dataXXXXXX``) cannot be told
from a drawn one. A compromised variant may create, or probe, a *new* name
of its choosing in the same directory, of the same length, differing from
the benign one only inside that run -- never an existing file (the create
is exclusive and follows no symbolic link), never another directory or
another separator, and the name it then uses is the one every variant
compares.

What is not covered: a variant that creates with a name of its own on a
descriptor the policy lets each variant run itself (a ``local_files``
path).
"""

from __future__ import annotations

from dmvx.calls import Call
from dmvx.policy import O_CREAT, O_EXCL
from dmvx.syscalls import AT_SYMLINK_NOFOLLOW

#: The characters made-up names are drawn from: glibc's and gnulib's
#: ``gen_tempname`` letters and digits, and the ``_`` of Python's ``tempfile``.
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
#: The fewest characters a template makes up (gnulib and coreutils refuse
#: templates of fewer than three X's; glibc wants six, Python draws eight).
MIN_RUN = 3

#: The canonical calls that take a fresh name: name -> (path argument, flags
#: argument, the bits those flags must carry); no flags argument: any call.
_NAME_CALLS: dict[str, tuple[int, int | None, int]] = {
    "openat": (1, 2, O_CREAT | O_EXCL),  # mkstemp, mkstemps, tmpfile: the exclusive create
    "mkdirat": (1, None, 0),  # mkdtemp
    "fstatat": (1, 3, AT_SYMLINK_NOFOLLOW),  # mktemp, tmpnam, tempnam: the lstat probe
}


def adopted_path(leader: Call, mine: Call) -> tuple[int, str] | None:
    """The argument index and the leader's path that ``mine`` must adopt, when
    the two calls differ only in the made-up letters of a fresh name (see the
    module docstring); None for any other difference."""
    where = _NAME_CALLS.get(leader.name)
    if where is None or mine.name != leader.name or len(mine.args) != len(leader.args):
        return None
    path_index, flags_index, required = where
    if flags_index is not None:
        flags = leader.args[flags_index]
        if not isinstance(flags, int) or flags & required != required:
            return None
    theirs, ours = leader.args[path_index], mine.args[path_index]
    if not isinstance(theirs, str) or not isinstance(ours, str) or not _made_up_apart(theirs, ours):
        return None
    if any(a != b for i, (a, b) in enumerate(zip(leader.args, mine.args)) if i != path_index):
        return None
    return path_index, theirs


def _made_up_apart(a: str, b: str) -> bool:
    """Whether two paths of one length differ only within one run of at
    least ``MIN_RUN`` name characters (in both) of their last component."""
    if len(a) != len(b) or a == b:
        return False
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    first, last = differ[0], differ[-1]
    if any(c not in LETTERS for c in a[first : last + 1] + b[first : last + 1]):
        return False  # a separator, a dot or a slash moved: not one run, or not the last component
    # The run holding the differences; outside the span both names are equal.
    start, end = first, last + 1
    while start > 0 and a[start - 1] in LETTERS:
        start -= 1
    while end < len(a) and a[end] in LETTERS:
        end += 1
    return end - start >= MIN_RUN and "/" not in a[end:]
