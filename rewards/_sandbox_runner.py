"""Runs inside the sandbox subprocess (``python -I -B _sandbox_runner.py config.json``).

Sets resource limits, installs an audit hook (the in-process layer: no sockets, no new processes,
no ctypes or other modules that reach below the hook, no writes outside the sandbox directory, no
reads outside it and the Python installation), then runs the program. Stdlib only. The
program's own stdout/stderr are the sandbox's; in "asserts" mode each test's outcome is printed
as ``<nonce> PASS i`` / ``<nonce> FAIL i`` (the nonce is known only to this process and the parent).
"""

import json
import os
import resource
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
_BLOCKED_MODULES = {
    "_posixsubprocess", "_ctypes", "ctypes", "_xxsubinterpreters", "_xxinterpchannels",
    "_interpreters", "_interpchannels", "_testcapi", "_testinternalcapi", "_testmultiphase",
}
# Device files a program may open besides its directory and the Python installation.
_READABLE_FILES = {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/stdin", "/dev/stdout", "/dev/stderr"}


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


def _install_hook(root):
    root = os.path.realpath(root)
    read_roots = _readable_roots(root)
    blocked = {
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
        "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "ctypes.dlsym", "ctypes.cdata",
        "os.setuid", "os.chroot",
    }
    path_events = {
        "os.remove": (0,), "os.rename": (0, 1), "os.rmdir": (0,), "os.mkdir": (0,),
        "os.chmod": (0,), "os.chown": (0,), "os.link": (0, 1), "os.symlink": (1,),
        "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "os.chflags": (0,),
    }
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    allowed_files = {"/dev/null", "/dev/stdout", "/dev/stderr"}
    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep

    def within(path, roots, files):
        if path is None or isinstance(path, int):  # a descriptor already open
            return True
        try:
            p = realpath(fsdecode(path))
        except Exception:
            return False
        return p in files or any(p == r or p.startswith(r + sep) for r in roots)

    def inside(path):
        return within(path, (root,), allowed_files)

    def readable(path):
        return within(path, read_roots, _READABLE_FILES)

    def hook(event, args):
        if event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "ctypes.dlopen":
            raise ImportError("sandbox: ctypes is not allowed")
        if event == "import" and args and str(args[0]).split(".")[0] in _BLOCKED_MODULES:
            raise ImportError(f"sandbox: importing {args[0]} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & write_flags)
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing outside the sandbox directory is not allowed: {path!r}")
            if not writing and not readable(path):
                raise PermissionError(f"sandbox: reading outside the sandbox directory is not allowed: {path!r}")
        elif event in path_events:
            for k in path_events[event]:
                if k < len(args) and not inside(args[k]):
                    raise PermissionError(f"sandbox: {event} outside the sandbox directory is not allowed")

    sys.addaudithook(hook)


def main():
    cfg_path = sys.argv[1]
    with open(cfg_path) as f:
        cfg = json.load(f)
    os.remove(cfg_path)
    with open(cfg["program"]) as f:
        program = f.read()
    tests = cfg.get("tests") or []
    nonce = cfg.get("nonce", "")
    mode = cfg.get("mode", "script")
    _limits(cfg)
    _install_hook(os.getcwd())
    del cfg
    sys.argv = ["main.py"]
    code = compile(program, "main.py", "exec")
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__file__": "main.py"}
    if mode == "script":
        exec(code, namespace)
        return
    write = sys.__stdout__.write
    flush = sys.__stdout__.flush
    try:
        exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001 - a program that fails to load fails every test
        write(f"\n{nonce} LOADFAIL {type(exc).__name__}\n")
        flush()
        return
    for i, test in enumerate(tests):
        try:
            exec(compile(test, f"test_{i}", "exec"), namespace)
            write(f"\n{nonce} PASS {i}\n")
        except BaseException:  # noqa: BLE001
            write(f"\n{nonce} FAIL {i}\n")
        flush()


if __name__ == "__main__":
    main()
