"""Runs inside the sandbox subprocess (``python -I -B _sandbox_runner.py config.json``).

Sets resource limits, installs an audit hook (the in-process layer: no sockets, no new processes,
no ctypes or other modules that reach below the hook, no writes outside the sandbox directory, no
reads outside it and the Python installation), then runs the program. Stdlib only. The program's
own stdout/stderr are the sandbox's. Modes:

- "script": run the program (stdin/stdout tests: the parent compares the output);
- "probes": load the program, then for each checkable test snippet run its imports and evaluate
  its probe expressions in the program's namespace, sending each value as plain data
  (``_plain.py``) on the results pipe; the parent compares them with the expected values, which
  never enter this process (``_asserts.py``);
- "asserts": load the program, then ``exec`` each (untrusted-form) test snippet in its namespace
  and send whether it raised. The program shares this process, so it can forge these: the parent
  counts such tests as resting on trust.

Results go to the pipe whose descriptor the config names, one JSON object a line. Nothing here is
secret: the program can write to the pipe too, and the parent treats a second message about the
same probe or test as a failure.
"""

import json
import os
import resource
import stat
import sys


def _limits(cfg):
    pairs = [
        (resource.RLIMIT_AS, cfg.get("mem_bytes")),
        (resource.RLIMIT_CPU, cfg.get("cpu_s")),
        (resource.RLIMIT_FSIZE, cfg.get("fsize_bytes")),
        (resource.RLIMIT_NOFILE, cfg.get("nofile")),
        (resource.RLIMIT_CORE, 0),
    ]
    if cfg.get("nproc"):
        pairs.append((resource.RLIMIT_NPROC, cfg["nproc"]))
    for res, value in pairs:
        if value is None:
            continue
        try:
            resource.setrlimit(res, (int(value), int(value)))
        except (ValueError, OSError):
            pass


# Modules that start processes, call C directly or run code the hook does not see (a
# subinterpreter has no Python-level audit hooks): importing them raises.
_BLOCKED_MODULES = frozenset({
    "_posixsubprocess", "_ctypes", "ctypes", "_xxsubinterpreters", "_xxinterpchannels",
    "_interpreters", "_interpchannels", "_testcapi", "_testinternalcapi", "_testmultiphase",
})
# Device files a program may open besides its directory and the Python installation.
_READABLE_FILES = frozenset({"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/stdin", "/dev/stdout", "/dev/stderr"})


def _readable_roots(root):
    """The trees a program may read: its directory, the interpreter's prefixes, its own /proc entry.

    Not ``/etc``, not ``/root``, not other processes' ``/proc`` entries: under the privilege drop the
    sandbox keeps CAP_DAC_READ_SEARCH (to read a Python installed under a private home), which would
    otherwise let it read any file on the machine (``/etc/shadow``, ``~/.ray/auth_token``).
    """
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots = {os.path.realpath(p) for p in prefixes if p}
    roots |= {root, f"/proc/{os.getpid()}", "/usr/share/zoneinfo"}
    return tuple(sorted(roots))


def _make_realpath():
    """``os.path.realpath`` for absolute str paths, made of C functions bound here.

    The hook cannot use ``os.path.realpath`` itself: it is Python whose helpers (``posixpath.
    _joinrealpath``, ``os.lstat`` as a module attribute) a program can replace, after which every
    path resolves to one inside the sandbox and ``/etc/shadow`` reads. Nonexistent components are
    kept as written, as the non-strict realpath does; a symlink loop raises OSError (refused).
    """
    lstat, readlink, getcwd, is_link, _reversed, _OSError = os.lstat, os.readlink, os.getcwd, stat.S_ISLNK, reversed, OSError

    def realpath(path):
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        todo = [p for p in _reversed(path.split("/")) if p and p != "."]
        resolved, links = "", 0  # "" is the root
        while todo:
            name = todo.pop()
            if name == "..":
                resolved = resolved.rpartition("/")[0]
                continue
            candidate = resolved + "/" + name
            try:
                mode = lstat(candidate).st_mode
            except _OSError:
                resolved = candidate
                continue
            if not is_link(mode):
                resolved = candidate
                continue
            links += 1
            if links > 40:
                raise _OSError("too many levels of symbolic links")
            target = readlink(candidate)
            if target.startswith("/"):
                resolved = ""
            todo += [p for p in _reversed(target.split("/")) if p and p != "."]
        return resolved or "/"

    return realpath


def _install_hook(root):
    """Install the audit hook. Its policy lives in this closure, frozen (frozensets, a read-only
    mapping), with the builtins it calls bound here: a program that rebinds the module's globals or
    ``builtins.str`` changes nothing. The gc calls that would hand the program the hook function
    itself (to reach its closure) are refused."""
    import types

    root = os.path.realpath(root)
    read_roots = _readable_roots(root)
    blocked_modules, readable_files = _BLOCKED_MODULES, _READABLE_FILES
    blocked = frozenset({
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
        "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "ctypes.dlsym", "ctypes.cdata",
        "os.setuid", "os.chroot", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    })
    path_events = types.MappingProxyType({
        "os.remove": (0,), "os.rename": (0, 1), "os.rmdir": (0,), "os.mkdir": (0,),
        "os.chmod": (0,), "os.chown": (0,), "os.link": (0, 1), "os.symlink": (1,),
        "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "os.chflags": (0,),
    })
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    allowed_files = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
    realpath, sep, encoding = _make_realpath(), os.sep, sys.getfilesystemencoding()
    _str, _bytes, _type, _any, _bool, _int, _len = str, bytes, type, any, bool, int, len
    _PermissionError, _ImportError, _Exception = PermissionError, ImportError, Exception

    def within(path, roots, files):
        kind = _type(path)
        if path is None or kind is _int:  # a descriptor already open
            return True
        if kind is _bytes:
            path = path.decode(encoding, "surrogateescape")
        elif kind is not _str:  # open() and os.* hand the hook str or bytes; anything else is refused
            return False
        try:
            p = realpath(path)
        except _Exception:
            return False
        return p in files or _any(p == r or p.startswith(r + sep) for r in roots)

    def inside(path):
        return within(path, (root,), allowed_files)

    def readable(path):
        return within(path, read_roots, readable_files)

    def hook(event, args):
        if event in blocked:
            raise _PermissionError(f"sandbox: {event} is not allowed")
        if event == "ctypes.dlopen":
            raise _ImportError("sandbox: ctypes is not allowed")
        if event == "import" and args and _str(args[0]).split(".")[0] in blocked_modules:
            raise _ImportError(f"sandbox: importing {args[0]} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (_type(mode) is _str and _any(c in mode for c in "wax+")) or _bool((flags or 0) & write_flags)
            if writing and not inside(path):
                raise _PermissionError(f"sandbox: writing outside the sandbox directory is not allowed: {path!r}")
            if not writing and not readable(path):
                raise _PermissionError(f"sandbox: reading outside the sandbox directory is not allowed: {path!r}")
        elif event in path_events:
            for k in path_events[event]:
                if k < _len(args) and not inside(args[k]):
                    raise _PermissionError(f"sandbox: {event} outside the sandbox directory is not allowed")

    sys.addaudithook(hook)


def _reporter(fd):
    """Send one JSON object a line on the results pipe (descriptor ``fd``)."""
    write, dumps = os.write, json.dumps

    def report(msg):
        data = (dumps(msg, separators=(",", ":")) + "\n").encode()
        while data:
            data = data[write(fd, data):]

    return report


def _error_name(exc):
    try:
        return str(type(exc).__name__)[:100]
    except BaseException:  # noqa: BLE001 - a program's exception class can be anything
        return "Exception"


def _load_plain():
    """Import ``_plain.py`` from beside this file (before the audit hook; -I leaves it off sys.path)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    try:
        import _plain
    finally:
        sys.path.remove(here)
    return _plain.to_plain


def _probe(snippets, namespace, report, to_plain):
    for s, snippet in enumerate(snippets):
        try:
            for stmt in snippet["setup"]:
                exec(compile(stmt, f"<setup {s}>", "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - the snippet fails, the next one runs
            report({"s": s, "setup": _error_name(exc)})
            continue
        for p, source in enumerate(snippet["probes"]):
            try:
                value = eval(compile(source, f"<probe {s}.{p}>", "eval"), namespace)
                report({"s": s, "p": p, "v": to_plain(value)})
            except BaseException as exc:  # noqa: BLE001 - raised, or not plain data: this probe fails
                report({"s": s, "p": p, "e": _error_name(exc)})


def _asserts(tests, namespace, report):
    for i, test in enumerate(tests):
        try:
            exec(compile(test, f"test_{i}", "exec"), namespace)
            ok = True
        except BaseException:  # noqa: BLE001
            ok = False
        report({"test": i, "ok": ok})


def main():
    cfg_path = sys.argv[1]
    with open(cfg_path) as f:
        cfg = json.load(f)
    os.remove(cfg_path)
    with open(cfg["program"]) as f:
        program = f.read()
    mode = cfg.get("mode", "script")
    to_plain = _load_plain() if mode == "probes" else None
    report = _reporter(cfg["result_fd"]) if mode != "script" else None
    _limits(cfg)
    _install_hook(os.getcwd())
    sys.argv = ["main.py"]
    code = compile(program, "main.py", "exec")
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__file__": "main.py"}
    if mode == "script":
        exec(code, namespace)
        return
    try:
        exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001 - a program that fails to load fails every test
        report({"load": _error_name(exc)})
        return
    report({"load": "ok"})
    if mode == "probes":
        _probe(cfg["snippets"], namespace, report, to_plain)
    else:
        _asserts(cfg["tests"], namespace, report)


if __name__ == "__main__":
    main()
