"""The work directory every corpus entry starts from, and its environment.

Fixed contents, fixed modification times and a fixed environment (locale,
time zone, git's author and dates), so that a command's output depends on
the command alone and the native run is a fair reference.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Every file's modification time (2020-01-02 03:04:05 UTC).
MTIME = 1577934245
#: The real-mode targets some entries build or run (threads).
_TARGETS = Path(__file__).resolve().parent.parent / "targets"

_WORDS = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "and",
    "then",
    "the",
    "dog",
    "sleeps",
    "while",
    "the",
    "fox",
    "runs",
    "far",
    "away",
    "into",
    "the",
    "quiet",
    "green",
    "forest",
    "near",
    "the",
    "old",
    "river",
)
_TEXT = "".join(f"{n} {w}\n" for n, w in enumerate(_WORDS))

_FILES: dict[str, str] = {
    "words.txt": _TEXT,
    "numbers.txt": "".join(f"{(n * 7919) % 1000}\n" for n in range(200)),
    "csv/people.csv": "name,age,city\nada,36,london\nalan,41,wilmslow\ngrace,85,arlington\nlinus,54,portland\n",
    "csv/cities.csv": "city,country\narlington,us\nlondon,uk\nportland,us\nwilmslow,uk\n",
    "tree/a/one.txt": "one\n",
    "tree/a/two.txt": "two\n",
    "tree/b/three.txt": "three\n",
    "tree/b/c/four.txt": "four\n",
    "old.txt": "alpha\nbeta\ngamma\ndelta\n",
    "new.txt": "alpha\nbeta\nGAMMA\ndelta\nepsilon\n",
    "c/util.h": "int square(int x);\n",
    "c/util.c": '#include "util.h"\nint square(int x) { return x * x; }\n',
    "c/main.c": (
        '#include <stdio.h>\n#include "util.h"\n'
        'int main(void) { for (int i = 1; i <= 5; i++) printf("%d %d\\n", i, square(i)); return 0; }\n'
    ),
    "c/Makefile": (
        "CC = gcc\nCFLAGS = -O2 -Wall\nall: app\n"
        "app: main.o util.o\n\t$(CC) -o $@ main.o util.o\n"
        "%.o: %.c util.h\n\t$(CC) $(CFLAGS) -c $<\n"
        "clean:\n\trm -f app *.o\n.PHONY: all clean\n"
    ),
    "scripts/count.sh": (
        "#!/bin/sh\n# counts words per line, a POSIX shell loop\n"
        'n=0\nwhile read -r num word; do n=$((n + 1)); echo "$n:$word"; done < words.txt\n'
        "echo total $n\n"
    ),
    "scripts/funcs.bash": (
        "#!/bin/bash\nset -eu\ndeclare -A seen\n"
        "add() { seen[$1]=$(( ${seen[$1]:-0} + 1 )); }\n"
        'while read -r _ w; do add "$w"; done < words.txt\n'
        'for k in $(printf "%s\\n" "${!seen[@]}" | sort); do echo "$k ${seen[$k]}"; done\n'
        'arr=(x y z); echo "${#arr[@]} ${arr[*]}"; [[ abc == a* ]] && echo glob\n'
    ),
    "py/subproc.py": (
        "import subprocess, sys\n"
        "out = subprocess.run(['sort', '-n', 'numbers.txt'], capture_output=True, text=True,\n"
        "                     check=True)\n"
        "print(out.stdout.splitlines()[:3])\n"
        "p = subprocess.Popen(['tr', 'a-z', 'A-Z'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
        "print(p.communicate(b'hello world')[0].decode(), p.returncode)\n"
        "print(subprocess.call(['sh', '-c', 'exit 7']))\n"
    ),
    "py/temp.py": (
        "import tempfile, os\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    with tempfile.NamedTemporaryFile('w', dir=d, suffix='.txt', delete=False) as f:\n"
        "        f.write('kept\\n')\n"
        "    print(open(f.name).read().strip(), len(os.listdir(d)))\n"
        "    fd, name = tempfile.mkstemp(dir=d); os.write(fd, b'x' * 100); os.close(fd)\n"
        "    print(os.path.getsize(name))\n"
        "with tempfile.TemporaryFile() as t:\n"
        "    t.write(b'spool'); t.seek(0); print(t.read())\n"
        "print(os.path.exists(d))\n"
    ),
    "py/db.py": (
        "import sqlite3\n"
        "db = sqlite3.connect('py.db')\n"
        "db.execute('create table t (k integer primary key, v text)')\n"
        "words = open('words.txt').read().split()[1::2]\n"
        "db.executemany('insert into t (v) values (?)', [(w,) for w in words])\n"
        "db.commit()\n"
        "for row in db.execute('select v, count(*) from t group by v order by 2 desc, 1 limit 5'):\n"
        "    print(row)\n"
        "db.close()\n"
    ),
    "py/http.py": (
        "import http.server, os, socketserver, urllib.request\n"
        "os.chdir('tree')\n"
        "class Quiet(http.server.SimpleHTTPRequestHandler):\n"
        "    def log_message(self, *args): pass\n"
        "server = socketserver.TCPServer(('127.0.0.1', 0), Quiet)\n"
        "port = server.server_address[1]\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    server.handle_request(); server.handle_request(); os._exit(0)\n"
        "server.server_close()\n"
        "for path in ('/a/', '/b/c/four.txt'):\n"
        "    with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}') as r:\n"
        "        body = r.read().decode()\n"
        "        links = sorted(l for l in body.splitlines() if 'href' in l)\n"
        "        print(r.status, links if path.endswith('/') else body)\n"
        "print(os.waitpid(pid, 0)[1])\n"
    ),
    "py/walk.py": (
        "import os, hashlib, json\n"
        "out = {}\n"
        "for root, dirs, files in os.walk('tree'):\n"
        "    dirs.sort()\n"
        "    for f in sorted(files):\n"
        "        p = os.path.join(root, f); out[p] = hashlib.sha256(open(p, 'rb').read()).hexdigest()[:12]\n"
        "print(json.dumps(out, indent=1, sort_keys=True))\n"
    ),
    "py/mmap_read.py": (
        "import mmap\n"
        "with open('words.txt', 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:\n"
        "    print(m.find(b'fox'), m[:20])\n"
    ),
    "py/cpus.py": ("import os\nprint(os.cpu_count(), len(os.sched_getaffinity(0)))\n"),
    # -- signals (issue 15 item 1) ------------------------------------------
    # A pyenv-style shim: bash, with $(...) and a SIGCHLD handler, in front of python3.
    "shims/python3": (
        "#!/usr/bin/env bash\nset -e\n"
        'program="${0##*/}"\n'
        'root="$(cd "$(dirname "$0")" && pwd)"\n'
        'version="$(cat "$root/version" 2>/dev/null || echo system)"\n'
        'if [ "$version" = system ]; then exec "/usr/bin/$program" "$@"; fi\n'
        'echo "$program: version $version not installed" >&2; exit 127\n'
    ),
    "py/alarm.py": (
        "import signal, sys\n"
        "signal.signal(signal.SIGALRM, lambda s, f: print('alarm', flush=True))\n"
        "signal.alarm(1)\n"
        "signal.pause()\n"
        "print('after pause')\n"
    ),
    "py/itimer.py": (
        "import signal, time\n"
        "ticks = 0\n"
        "def tick(s, f):\n"
        "    global ticks\n"
        "    ticks += 1\n"
        "    print('tick', ticks, flush=True)\n"
        "    if ticks < 5:\n"
        "        signal.setitimer(signal.ITIMER_REAL, 0.05)  # the next one, once this one is done\n"
        "signal.signal(signal.SIGALRM, tick)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.05)\n"
        "while ticks < 5:\n"
        "    time.sleep(0.01)\n"
        "print('done', ticks)\n"
    ),
    "py/threads.py": (_TARGETS / "pythreads.py").read_text(),
    "c/threads.c": (_TARGETS / "threads.c").read_text(),
    # A threaded server and its own benchmark client on a socket in the work
    # directory; what is printed is what the benchmark left in the store.
    "sh/redis.sh": (
        "redis-server --port 0 --unixsocket \"$PWD/redis.sock\" --save '' --appendonly no --logfile redis.log &\n"
        "until redis-cli -s redis.sock ping >/dev/null 2>&1; do sleep 0.1; done\n"
        "redis-benchmark -s redis.sock -n 200 -c 4 -q -t set,get,incr,lpush,lpop >/dev/null &&\n"
        "redis-cli -s redis.sock get counter:__rand_int__ && redis-cli -s redis.sock llen mylist\n"
        "redis-cli -s redis.sock shutdown nosave\n"
        "wait\n"
        'echo "redis-server ended with $?"\n'
    ),
    "sh/memcached.sh": (
        'memcached -u root -s "$PWD/mc.sock" -a 0777 -t 4 &\n'
        "server=$!\n"
        # (a client that finds no server prints its own address: wait for the socket)
        "until [ -S mc.sock ]; do sleep 0.1; done\n"
        'memcslap --servers="$PWD/mc.sock" --concurrency=4 --execute-number=200 --test=set >/dev/null &&\n'
        'memccp --servers="$PWD/mc.sock" words.txt && memccat --servers="$PWD/mc.sock" words.txt | wc -l\n'
        "kill $server\n"
        "wait\n"
        'echo "memcached ended with $?"\n'
    ),
    "sql/schema.sql": (
        "create table person (name text, age int, city text);\n"
        "insert into person values ('ada',36,'london'),('alan',41,'wilmslow'),\n"
        "  ('grace',85,'arlington');\n"
        "select city, name from person where age > 40 order by name;\n"
        "select count(*), sum(age) from person;\n"
    ),
}

#: Fixture files the entries run as programs.
_EXECUTABLE = ("shims/python3",)


def environment(work: Path) -> dict[str, str]:
    """The environment every run of an entry gets, native or not."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(work / "home"),
        "LC_ALL": "C",
        "TZ": "UTC",
        "LANG": "C",
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.org",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.org",
        "GIT_AUTHOR_DATE": "2020-01-02T03:04:05Z",
        "GIT_COMMITTER_DATE": "2020-01-02T03:04:05Z",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def lay_out(work: Path) -> None:
    """(Re)create the work directory with the fixed files, all at :data:`MTIME`."""
    if work.exists():
        shutil.rmtree(work)
    (work / "home").mkdir(parents=True)
    (work / "home" / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    for name, text in _FILES.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name in _EXECUTABLE:
            path.chmod(0o755)
    for root, dirs, files in os.walk(work, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(root, name), (MTIME, MTIME), follow_symlinks=False)
    os.utime(work, (MTIME, MTIME))
