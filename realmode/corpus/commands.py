"""The corpus: everyday commands and scripts, as users run them.

Each :class:`Entry` is one command line run in the work directory of
:mod:`realmode.corpus.fixtures`. ``output`` says whether its stdout and stderr
are deterministic (then they are compared with the native run's; the exit
status always is). ``known`` names why an entry is expected to diverge today
(work tracked in issue 15), so a reader of the figure knows what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    argv: tuple[str, ...]
    #: Whether stdout and stderr are the same in every run natively.
    output: bool = True
    #: Why this entry is expected to diverge under dmvx today (None: it must not).
    known: str | None = None
    #: Programs it needs on PATH (from deps/debian-packages.txt).
    needs: tuple[str, ...] = ()


def _sh(name: str, script: str, **kw) -> Entry:
    return Entry(name, ("sh", "-c", script), **kw)


def _bash(name: str, script: str, **kw) -> Entry:
    return Entry(name, ("bash", "-c", script), **kw)


ENTRIES: tuple[Entry, ...] = (
    # -- coreutils --------------------------------------------------------------
    Entry("ls-l", ("ls", "-l", "--time-style=+%F %T", "tree/a", "csv")),
    Entry("ls-laR", ("ls", "-laR", "--time-style=long-iso", "tree")),
    Entry("cat", ("cat", "words.txt", "old.txt")),
    Entry("head-tail", ("sh", "-c", "head -n 5 words.txt; tail -n 3 numbers.txt; tail -c 20 words.txt")),
    Entry("wc", ("wc", "words.txt", "numbers.txt", "old.txt")),
    Entry("sort-uniq", ("sh", "-c", "sort -n numbers.txt | uniq -c | sort -rn | head -5")),
    Entry("cut-tr", ("sh", "-c", "cut -d, -f1,3 csv/people.csv | tr a-z A-Z")),
    Entry("seq", ("seq", "-w", "1", "7", "100")),
    Entry("sha256sum", ("sha256sum", "words.txt", "numbers.txt", "old.txt", "new.txt")),
    Entry("md5sum-check", ("sh", "-c", "md5sum words.txt > sums && md5sum -c sums")),
    Entry("base64", ("sh", "-c", "base64 words.txt | base64 -d | cmp - words.txt && echo same")),
    Entry("od", ("od", "-A", "x", "-t", "x1z", "-N", "64", "words.txt")),
    Entry("date-fixed", ("date", "-u", "-d", "@1000000000", "+%Y-%m-%d %H:%M:%S %A")),
    Entry("stat", ("stat", "-c", "%n %s %a %Y %F", "words.txt", "tree", "c/main.c")),
    Entry("cp-mv-rm", ("sh", "-c", "cp -a tree t2 && mv t2/a t2/z && rm -r t2/b && find t2 | sort && rm -r t2")),
    Entry(
        "mkdir-ln-readlink",
        (
            "sh",
            "-c",
            "mkdir -p x/y/z && ln -s x/y link && readlink link && realpath --relative-to=. link/z && ls -d link/*",
        ),
    ),
    Entry("find-xargs", ("sh", "-c", "find tree -type f -name '*.txt' | sort | xargs cat")),
    Entry("tee", ("sh", "-c", "seq 5 | tee copy.txt | wc -l; cat copy.txt")),
    Entry("split-cat", ("sh", "-c", "split -l 50 numbers.txt part. && ls part.* && cat part.* | cmp - numbers.txt")),
    Entry(
        "join-paste-comm",
        (
            "sh",
            "-c",
            "tail -n +2 csv/people.csv | sort -t, -k3 > p && "
            "tail -n +2 csv/cities.csv > c && join -t, -1 3 -2 1 p c; "
            "paste -d' ' old.txt new.txt; comm old.txt new.txt; nl -ba old.txt",
        ),
    ),
    Entry("tac-rev-fold", ("sh", "-c", "tac old.txt | rev | fold -w 3")),
    Entry("shuf-seeded", ("sh", "-c", "shuf -n 5 --random-source=numbers.txt words.txt")),
    Entry("du-s", ("du", "-s", "--apparent-size", "tree")),
    Entry("df", ("df", "-h", "/"), output=False),
    Entry("id-uname", ("sh", "-c", "id -u; uname -s; hostname >/dev/null; whoami")),
    Entry("env-printenv", ("sh", "-c", "printenv TZ LC_ALL; env | grep -c GIT_")),
    Entry("nproc", ("nproc",)),
    Entry("sleep", ("sleep", "0.2")),
    Entry("timeout", ("timeout", "0.5", "sleep", "5")),
    Entry(
        "truncate-dd",
        (
            "sh",
            "-c",
            "dd if=/dev/zero of=z bs=1k count=64 status=none && truncate -s 10k z && "
            "stat -c %s z && dd if=words.txt bs=16 skip=1 count=2 status=none",
        ),
    ),
    Entry("touch-utimes", ("sh", "-c", "touch -d '2001-02-03 04:05:06' t && touch -a t && stat -c '%Y %n' t")),
    Entry("mktemp", ("sh", "-c", "f=$(mktemp) && echo hi > $f && cat $f && rm $f && d=$(mktemp -d) && rmdir $d")),
    Entry("exit-status", ("sh", "-c", "false; echo $?; ls /nonexistent; exit 4")),
    # -- text tools -------------------------------------------------------------
    Entry("grep-r", ("grep", "-rn", "o", "tree")),
    Entry("grep-E-count", ("grep", "-Ec", "^[0-9]+ (the|fox|dog)$", "words.txt")),
    Entry("sed", ("sed", "-n", "-e", "s/the/THE/g", "-e", "2,6p", "words.txt")),
    Entry("sed-inplace", ("sh", "-c", "cp old.txt e.txt && sed -i 's/a/A/g' e.txt && cat e.txt")),
    Entry("awk", ("awk", "-F,", 'NR > 1 { s += $2; n++ } END { printf "%d %.2f\\n", n, s / n }', "csv/people.csv")),
    Entry("diff-u", ("diff", "-u", "old.txt", "new.txt")),
    Entry("cmp-diff-same", ("sh", "-c", "cmp old.txt old.txt && diff -q old.txt new.txt; echo $?")),
    Entry(
        "patch",
        (
            "sh",
            "-c",
            "diff -u old.txt new.txt > p.diff; cp old.txt o2.txt && patch -s o2.txt p.diff && "
            "cmp o2.txt new.txt && echo patched",
        ),
    ),
    Entry("jq", ("sh", "-c", "echo '{\"a\": [1, 2, {\"b\": 3}]}' | jq -c '.a[2].b, (.a | length)'"), needs=("jq",)),
    # -- archives ---------------------------------------------------------------
    Entry("tar-czf-tzf", ("sh", "-c", "tar czf t.tgz tree && tar tzf t.tgz | sort")),
    Entry(
        "tar-xzf",
        ("sh", "-c", "tar czf t.tgz tree && mkdir out && tar xzf t.tgz -C out && ls -lR --time-style=long-iso out"),
    ),
    Entry(
        "gzip-gunzip",
        ("sh", "-c", "gzip -c -n words.txt > w.gz && gunzip -c w.gz | sha256sum && gzip -l w.gz | tail -1"),
    ),
    Entry("bzip2", ("sh", "-c", "bzip2 -c numbers.txt | bunzip2 | md5sum"), needs=("bzip2",)),
    Entry(
        "xz",
        ("sh", "-c", "xz -c numbers.txt | xz -dc | md5sum; xz -k words.txt && xz -l words.txt.xz | wc -l"),
        needs=("xz",),
    ),
    Entry(
        "zip-unzip",
        (
            "sh",
            "-c",
            "zip -q -X -r t.zip tree && unzip -l t.zip | awk '{print $1, $4}' && "
            "unzip -q t.zip -d u && cat u/tree/a/one.txt",
        ),
        needs=("zip", "unzip"),
    ),
    # -- git --------------------------------------------------------------------
    Entry(
        "git-init-commit-log",
        (
            "sh",
            "-c",
            "git init -q r && cd r && cp ../old.txt f && git add f && "
            "git commit -q -m one && cp ../new.txt f && git commit -q -am two && "
            "git log --stat && git diff HEAD~1 --stat",
        ),
        needs=("git",),
    ),
    Entry(
        "git-branch-merge",
        (
            "sh",
            "-c",
            "git init -q r && cd r && echo a > a && git add a && git commit -qm a && "
            "git checkout -qb side && echo b > b && git add b && git commit -qm b && "
            "git checkout -q main && git merge -q --no-edit side && git log --oneline --graph && "
            "git status --short --branch",
        ),
        needs=("git",),
    ),
    Entry(
        "git-diff-show",
        (
            "sh",
            "-c",
            "git init -q r && cd r && cp ../old.txt f && git add f && git commit -qm x && "
            "cp ../new.txt f && git diff && git show --stat HEAD | head -3",
        ),
        needs=("git",),
    ),
    # -- sqlite3 ----------------------------------------------------------------
    Entry(
        "sqlite3-file",
        ("sh", "-c", "sqlite3 db.sqlite < sql/schema.sql && sqlite3 db.sqlite 'select count(*) from person'"),
        needs=("sqlite3",),
    ),
    Entry(
        "sqlite3-csv",
        ("sqlite3", ":memory:", ".mode csv", ".import csv/people.csv p", "select name, age from p order by age desc;"),
        needs=("sqlite3",),
    ),
    # -- make and gcc -----------------------------------------------------------
    Entry("make-gcc", ("sh", "-c", "cd c && make -s && ./app && make -s clean && ls"), needs=("make", "gcc")),
    Entry("make-j2", ("sh", "-c", "cd c && make -s -j2 && ./app"), needs=("make", "gcc")),
    Entry("gcc-direct", ("sh", "-c", "gcc -O0 -o hello c/main.c c/util.c && ./hello | tail -1"), needs=("gcc",)),
    # -- shells -----------------------------------------------------------------
    Entry("sh-script", ("sh", "scripts/count.sh")),
    Entry(
        "dash-loop",
        ("dash", "-c", "i=0; while [ $i -lt 20 ]; do i=$((i+1)); case $i in *5) echo five $i;; esac; done; echo $i"),
        needs=("dash",),
    ),
    Entry(
        "dash-subshells", ("dash", "-c", "for i in 1 2 3; do x=$(echo $i | tr 1-3 a-c); echo $x; done"), needs=("dash",)
    ),
    Entry("dash-background-wait", ("dash", "-c", "sleep 0.1 & sleep 0.05 & wait; echo done"), needs=("dash",)),
    Entry("bash-script", ("bash", "scripts/funcs.bash")),
    _bash("bash-heredoc-pipes", "cat <<EOF | sort -r | head -2\nb\na\nc\nEOF\nread x < old.txt; echo $x"),
    _bash("bash-subshells", "for i in 1 2 3; do x=$(echo $i); echo $x; done"),
    _bash("bash-background-wait", "sleep 0.1 & wait $!; echo waited $?"),
    # -- Python (the system's /usr/bin/python3) ---------------------------------
    Entry("python-subprocess", ("/usr/bin/python3", "py/subproc.py")),
    Entry("python-tempfile", ("/usr/bin/python3", "py/temp.py")),
    Entry("python-sqlite3", ("/usr/bin/python3", "py/db.py")),
    Entry("python-http-server", ("/usr/bin/python3", "py/http.py")),
    Entry("python-walk-hash", ("/usr/bin/python3", "py/walk.py")),
    Entry("python-mmap", ("/usr/bin/python3", "py/mmap_read.py")),
    Entry("python-cpus", ("/usr/bin/python3", "py/cpus.py")),
    Entry(
        "python-json-stdin",
        ("sh", "-c", "echo '[3,1,2]' | /usr/bin/python3 -c 'import json,sys; print(sorted(json.load(sys.stdin)))'"),
    ),
    Entry(
        "python-threads",
        (
            "/usr/bin/python3",
            "-c",
            "import threading; t = threading.Thread(target=print, args=('hi',)); t.start(); t.join()",
        ),
    ),
    Entry("python-threads-pool", ("/usr/bin/python3", "py/threads.py")),
    Entry(
        "c-threads",
        (
            "sh",
            "-c",
            "gcc -O2 -pthread -o threads c/threads.c && ./threads io 4 10 . && ./threads self-exit && "
            "./threads exec && ./threads signal; ./threads exit-group; echo status $?",
        ),
        needs=("gcc",),
    ),
    Entry("redis-benchmark", ("sh", "sh/redis.sh"), needs=("redis-server", "redis-benchmark", "redis-cli")),
    Entry(
        "memcached-memcslap",
        ("sh", "sh/memcached.sh"),
        needs=("memcached", "memcslap", "memccp", "memccat"),
    ),
)

#: Signals with handlers, from children, timers and other processes (issue 15
#: item 1, docs/realmode.md "Signals"): ``python -m realmode.corpus --set
#: signals --repeat 200`` is that item's evidence.
_LOOP = 'for i in $(seq 1 20); do x=$(echo $i); printf "%s " "$x"; done; echo'
_JOBS = "sleep 0.1 & sleep 0.05 & wait; echo all; sleep 0.02 & wait $!; echo one $?"
_TRAP_CHLD = "n=0; trap 'n=$((n+1))' CHLD; for i in 1 2 3; do sleep 0.01 & wait $!; done; echo children $n"
#: The receiver says its pid once its trap is set; another process kills it.
#: (Its sleep is left to end by itself: a kill that reaches a process at an
#: arbitrary point of its start, with no handler, ends it at another call in
#: each variant, which is not what this entry is about.)
_RECEIVER = 'sleep 1 > /dev/null & trap "echo caught TERM; exit 3" TERM; echo $$; wait'
SIGNALS: tuple[Entry, ...] = (
    _bash("signals-bash-subshell-loop", _LOOP),
    Entry("signals-dash-subshell-loop", ("dash", "-c", _LOOP), needs=("dash",)),
    _bash("signals-bash-jobs-wait", _JOBS),
    Entry("signals-dash-jobs-wait", ("dash", "-c", _JOBS), needs=("dash",)),
    _bash("signals-bash-trap-chld", _TRAP_CHLD),
    Entry("signals-dash-trap-chld", ("dash", "-c", _TRAP_CHLD), needs=("dash",)),
    _bash(
        "signals-bash-trap-term-kill",
        f'bash -c \'{_RECEIVER}\' | {{ read pid; kill -TERM "$pid"; cat; }}; echo "status ${{PIPESTATUS[0]}}"',
    ),
    Entry(
        "signals-dash-trap-term-kill",
        ("dash", "-c", f"(dash -c '{_RECEIVER}'; echo status $?) | {{ read pid; kill -TERM \"$pid\"; cat; }}"),
        needs=("dash",),
    ),
    Entry("signals-timeout", ("timeout", "0.5", "sleep", "5")),
    Entry("signals-python-alarm", ("/usr/bin/python3", "py/alarm.py")),
    Entry("signals-python-setitimer", ("/usr/bin/python3", "py/itimer.py")),
    Entry("signals-pyenv-shim", ("shims/python3", "py/subproc.py")),
)
#: The named sets ``--set`` picks from.
SETS: dict[str, tuple[Entry, ...]] = {"all": ENTRIES + SIGNALS, "signals": SIGNALS}
