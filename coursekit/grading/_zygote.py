"""The warm parent of grading kernels: runs inside its own bubblewrap sandbox (see :mod:`coursekit.grading.warm`).

This file is not imported by the package: :mod:`coursekit.grading.warm` binds it
read-only into the zygote's sandbox and runs it there, where the course package
is not visible. It uses the standard library only (and ``ctypes`` for the system
calls Python 3.11 lacks), before it imports what grading kernels need.

The parent (the "zygote", after Android's process that forks every app from
one warm copy) imports the modules named on its command line once, then
waits for requests on the file descriptor given first on its command line, a
``SOCK_SEQPACKET`` socket to the grader, and on the Unix socket named second
(for the grader's forked workers; it lies in a folder only root can enter,
which no kernel sees). For each request it forks a kernel that is isolated afresh, as a new
bubblewrap sandbox would be:

1. ``C`` (a child, still root with the sandbox's capabilities) joins the
   kernel's cgroups, unshares new mount, PID, network, IPC, UTS and cgroup
   namespaces and forks ``G``, then reports ``G``'s PID and exits. In
   user-namespace mode (the grader is an ordinary user, and so is the zygote,
   with its capabilities valid in its own user namespace) ``C`` first enters a
   new user namespace where the grader's ids are the only ones mapped; the
   other namespaces belong to it, and ``G`` makes it unable to create another.
2. ``G`` is PID 1 of the new PID namespace. In the new mount namespace it
   mounts a fresh size-limited tmpfs on ``/tmp`` (and on ``/dev/shm`` and the
   grader's folder), copies the kernel's input files into the working folder
   read-only, binds the kernel's socket folder (made by the grader in a folder the
   zygote sees; covered by the new ``/tmp`` for everyone else) and a new ``/proc``, and brings
   up the loopback interface. It forks ``K``, drops to the kernel's user
   (rlimits, no new privileges, no capabilities) and only reaps orphans until
   ``K`` exits, then exits with ``K``'s status (which ends every process left in
   the namespace).
3. ``K`` drops to the kernel's user the same way, closes every inherited file
   descriptor (its stdin is a pipe ``G`` holds, its stdout and stderr /dev/null), reseeds NumPy's global generator (a fresh process has its own
   entropy; ``random`` reseeds itself at a fork) and runs
   ``ipykernel_launcher`` as ``python -m`` would.

Requests and answers are JSON, one per message; file descriptors travel with
them (``SCM_RIGHTS``)::

    grader -> zygote  {"uid", "gid", "limits": [address space, cpu s, processes, file size],
                       "tmp_bytes", "shm_bytes", "grader_bytes", "grader_dir", "workdir",
                       "inputs": [relative paths], "socket_dir", "matplotlib_dir", "argv": [...],
                       "cgroups": n, "stderr": bool, "keep": [folders under /tmp to bind again],
                       "userns": bool, "sockets_inside": folder or null, "sockets_bytes"}
                      fds: [n cgroup.procs files opened for writing, one per input (read-only),
                            the connection file if "sockets_inside" (read-only; copied in there, where the
                            kernel makes its sockets, instead of binding "socket_dir"),
                            the file for the kernel's stderr if "stderr" (for diagnosis; else /dev/null)]
    zygote -> grader  {"pid": G's PID in the zygote} fds: [pidfd of G, pidfd of K]
                    | {"error": "..."}
"""

import ctypes
import fcntl
import gc
import json
import os
import random
import resource
import runpy
import selectors
import signal
import socket
import struct
import sys
import traceback

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _check(result, what):
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _unshare(flags):
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source, target, kind, flags, data=None):
    _check(_libc.mount(source and source.encode(), target.encode(), kind and kind.encode(), ctypes.c_ulong(flags),
                       data and data.encode()), f"mount {target}")


def _no_new_privileges():
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def _loopback_up():
    """Bring up ``lo`` in the new network namespace, as bubblewrap's ``--unshare-net`` does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(probe.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _make_dirs(path, mode):
    """Create ``path`` and its missing parents, each with ``mode`` (umask aside)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.mkdir(folder)
        os.chmod(folder, mode)


def _read_only(target):
    """Make the bind mount at ``target`` read-only (a write fails with EROFS, as under a read-only bind of bwrap)."""
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _bind(fd, target, read_only):
    """Bind what ``fd`` (opened in this mount namespace) names onto ``target``."""
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    if read_only:
        _read_only(target)


def _copy_in(source_fd, target):
    """Copy an input file into the kernel's tmpfs, then make it read-only (EROFS, as a read-only bind).

    It keeps the original's permission bits, as a bind of it would show them.
    """
    with open(target, "wb") as out:
        os.lseek(source_fd, 0, os.SEEK_SET)
        while True:
            chunk = os.read(source_fd, 1 << 20)
            if not chunk:
                break
            out.write(chunk)
    os.chmod(target, os.fstat(source_fd).st_mode & 0o777)
    _mount(target, target, None, MS_BIND)
    _read_only(target)


def _set_up_mounts(request, fds):
    """In the new mount namespace (as ``G``): the kernel's own file system, as a new sandbox would have it."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Opened here, in this namespace, so that they can be bound once /tmp is covered.
    socket_fd = None if request.get("sockets_inside") else \
        os.open(request["socket_dir"], os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    kept = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in request.get("keep", [])}
    fonts = [name for name in os.listdir(request["matplotlib_dir"]) if name.startswith("fontlist-")]
    font_fds = {name: os.open(os.path.join(request["matplotlib_dir"], name), os.O_PATH) for name in fonts}
    flags = MS_NOSUID | MS_NODEV
    _mount("tmpfs", "/tmp", "tmpfs", flags, f"size={request['tmp_bytes']},mode=1777")
    _mount("tmpfs", "/dev/shm", "tmpfs", flags, f"size={request['shm_bytes']},mode=1777")
    _mount("tmpfs", request["grader_dir"], "tmpfs", flags, f"size={request['grader_bytes']},mode=1777")
    for path, fd in kept.items():  # the Python installation, when it lives under /tmp: read-only again
        _make_dirs(path, 0o755)
        _bind(fd, path, read_only=True)
    _make_dirs(request["matplotlib_dir"], 0o1777)
    for name, fd in font_fds.items():
        target = os.path.join(request["matplotlib_dir"], name)
        open(target, "wb").close()
        _bind(fd, target, read_only=True)
    if request.get("sockets_inside"):
        # User-namespace mode: the kernel has the grader's user id outside, so no folder of the host may be
        # writable for it. Its sockets go on a small tmpfs of its own (the grader reaches them through
        # /proc/<pid>/root), with the connection file copied in, read-only.
        inside = request["sockets_inside"]
        _make_dirs(inside, 0o755)
        _mount("tmpfs", inside, "tmpfs", flags, f"size={request['sockets_bytes']},mode=0700")
        connection = fds[request["cgroups"] + len(request["inputs"])]
        _copy_in(connection, os.path.join(inside, "kernel.json"))
    else:
        _make_dirs(os.path.dirname(request["socket_dir"]), 0o755)
        os.mkdir(request["socket_dir"])
        _bind(socket_fd, request["socket_dir"], read_only=False)
    workdir = request["workdir"]
    _make_dirs(workdir, 0o1777)
    inputs = fds[request["cgroups"]:request["cgroups"] + len(request["inputs"])]
    for relative, fd in zip(request["inputs"], inputs):
        target = os.path.join(workdir, relative)
        _make_dirs(os.path.dirname(target), 0o1777)
        _copy_in(fd, target)
    for fd in (*font_fds.values(), *kept.values()):
        os.close(fd)
    if socket_fd is not None:
        os.close(socket_fd)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if request.get("userns"):
        # No user namespace can be made from this one (bubblewrap's --disable-userns).
        with open("/proc/sys/user/max_user_namespaces", "w") as limit:
            limit.write("0")


def _become_kernel_user(request):
    """Limits, no new privileges, the kernel's user: after this no capability is left."""
    address_space, cpu, processes, file_size = request["limits"]
    for limit, value in ((resource.RLIMIT_AS, address_space), (resource.RLIMIT_CPU, cpu),
                         (resource.RLIMIT_NPROC, processes), (resource.RLIMIT_FSIZE, file_size),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    _no_new_privileges()
    if request.get("userns"):  # in its own user namespace, the kernel's ids are the only ones mapped
        with open("/proc/sys/kernel/cap_last_cap") as last:
            for capability in range(int(last.read()) + 1):
                _check(_libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0), "prctl(CAPBSET_DROP)")
    else:
        os.setgroups([])
        os.setresgid(request["gid"], request["gid"], request["gid"])
        os.setresuid(request["uid"], request["uid"], request["uid"])
    _drop_capabilities()


def _drop_capabilities():
    """Empty every capability set, as bubblewrap leaves a kernel.

    After setuid (root mode) only the inheritable set is left; in a user
    namespace of its own (user-namespace mode) the process holds every
    capability there until now.
    """
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")


def _only_standard_streams(stdin=None, stderr=None, keep=None):
    """Close every inherited file descriptor but 0, 1, 2 (and ``keep``).

    With ``stdin`` (a pipe's read end), the standard streams become what a
    kernel started by jupyter_client has: that pipe in, /dev/null out. A
    kernel's console chatter is not the student's output (that goes over the
    sockets), and a kernel writing there must not fill the grader's disk; only
    a diagnosis (``stderr``, a file the grader opened) gets its stderr.
    """
    if stdin is not None:
        devnull = os.open("/dev/null", os.O_RDWR)
        os.dup2(stdin, 0)
        os.dup2(devnull, 1)
        os.dup2(stderr if stderr is not None else devnull, 2)
    if keep is None:
        os.closerange(3, 65536)
    else:
        os.closerange(3, keep)
        os.closerange(keep + 1, 65536)


def _run_kernel(request, fds, stdin):
    """``K``: become ``python -m ipykernel_launcher ...`` in this warm interpreter."""
    os.chdir(request["workdir"])
    os.environ["PWD"] = request["workdir"]
    _become_kernel_user(request)
    _only_standard_streams(stdin=stdin, stderr=fds[-1] if request.get("stderr") else None)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # from the system's entropy, as a fresh import would
    random.seed()
    sys.argv = ["ipykernel_launcher", *request["argv"]]
    sys.path[0] = os.getcwd()  # `python -m` puts the working folder first (the launcher removes it again)
    runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)


def _init(request, fds, report):
    """``G``: PID 1 of the kernel's namespace; says "ok" (or the error) on ``report`` once ``K`` is forked."""
    try:
        _set_up_mounts(request, fds)
        _loopback_up()
    except Exception:  # noqa: BLE001 (reported to the grader as the kernel's failure to start)
        os.write(report, ("error: " + traceback.format_exc(limit=3)).encode()[-4000:])
        os._exit(70)
    os.setsid()  # a session of its own, which the kernel joins (as under bubblewrap's --new-session)
    stdin, stdin_writer = os.pipe()  # held open by G, as jupyter_client holds a kernel's
    kernel = os.fork()
    if kernel == 0:
        try:
            _run_kernel(request, fds, stdin)
        except SystemExit as stop:
            code = stop.code
            os._exit(code if isinstance(code, int) else (0 if code is None else 1))
        except BaseException:  # noqa: BLE001 (the kernel process ends here, whatever happened)
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.write(report, b"ok")
    _become_kernel_user(request)
    _only_standard_streams(keep=stdin_writer)
    while True:  # reap orphans, as an init does; end with the kernel
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == kernel:
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def _own_user_namespace(uid, gid):
    """Enter a new user namespace where ``uid`` and ``gid`` are this process's ids (user-namespace mode).

    They stand for the zygote's own (the grader's, outside). The namespaces
    made next belong to it; ``RLIMIT_NPROC`` counts the processes of each user
    per user namespace, so the kernel's process limit is its own.
    """
    outside_uid, outside_gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as setgroups:
        setgroups.write("deny")
    with open("/proc/self/uid_map", "w") as uid_map:
        uid_map.write(f"{uid} {outside_uid} 1\n")
    with open("/proc/self/gid_map", "w") as gid_map:
        gid_map.write(f"{gid} {outside_gid} 1\n")


def _read_all(fd):
    said = b""
    while chunk := os.read(fd, 4096):
        said += chunk
    os.close(fd)
    return said.decode(errors="replace")


def _spawn(sockets, request, fds):
    """Fork ``C``, which makes the namespaces and ``G``; answer with pidfds of ``G`` and ``K``."""
    from_c, to_zygote = os.pipe()  # C says G's PID (or its error)
    from_g, g_reports = os.pipe()  # G says "ok" once K is forked (or its error)
    child = os.fork()
    if child == 0:
        try:
            os.close(from_c)
            os.close(from_g)
            for connection in sockets:
                connection.close()  # nothing forked from here talks to the grader
            for fd in fds[:request["cgroups"]]:
                os.write(fd, b"0")  # this process (and so the kernel) joins the kernel's cgroups
            if request.get("userns"):
                _own_user_namespace(request["uid"], request["gid"])
            _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)
            init = os.fork()
            if init == 0:
                os.close(to_zygote)
                _init(request, fds, g_reports)
            os.write(to_zygote, str(init).encode())
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os.write(to_zygote, ("error: " + traceback.format_exc(limit=3)).encode()[-4000:])
            os._exit(70)
    for fd in (to_zygote, g_reports, *fds):
        os.close(fd)
    os.waitpid(child, 0)
    said_c, said_g = _read_all(from_c), _read_all(from_g)
    if not said_c.isdigit():
        return {"error": said_c or "the kernel's namespaces were not made"}, []
    if said_g != "ok":
        return {"error": said_g or "the kernel's init ended before it forked the kernel"}, []
    init = int(said_c)
    with open(f"/proc/{init}/task/{init}/children") as children:
        kernel = int(children.read().split()[0])
    return {"pid": init}, [os.pidfd_open(init), os.pidfd_open(kernel)]


def _end_kernels(init_fds):
    """SIGKILL the namespace inits ``init_fds`` (pidfds) that still run (each kernel dies with its init); close them."""
    for fd in init_fds:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass  # that kernel has ended already
        os.close(fd)


def serve(control_fd, listen_path, preload):
    """Import ``preload``, then fork a kernel for each request until the grader closes ``control_fd``.

    Requests come on ``control_fd`` (the grading process that started the
    zygote) and on connections to the Unix socket ``listen_path`` (its forked
    grading workers, each with a connection of its own), one at a time. When
    a worker's connection ends (it finished, or was killed), the kernels it
    asked for end too, as a cold kernel ends with its worker (bubblewrap's
    ``--die-with-parent``): a killed worker leaves no kernel running.
    """
    for name in preload:
        try:
            __import__(name)
        except Exception as error:  # noqa: BLE001 (a kernel without it imports it itself)
            print(f"warm kernels: could not preload {name}: {error}", file=sys.stderr, flush=True)
    # What the imports made lives as long as every kernel: out of the collector's sight, a kernel's full
    # collections neither walk it (about 80 ms each) nor write to its pages, which would copy them (the
    # recipe of the gc module's documentation for a server that forks).
    gc.freeze()
    control = socket.socket(fileno=control_fd)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(listen_path)
    listener.listen(64)
    waiting = selectors.DefaultSelector()
    waiting.register(control, selectors.EVENT_READ)
    waiting.register(listener, selectors.EVENT_READ)
    control.sendall(json.dumps({"ready": sorted(m for m in preload if m in sys.modules)}).encode())
    started = {}  # connection -> pidfds of the inits of the kernels it asked for
    while True:
        for key, _ in waiting.select():
            connection = key.fileobj
            if connection is listener:
                waiting.register(listener.accept()[0], selectors.EVENT_READ)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(connection, 1 << 16, 64)
            except OSError:
                message, fds = b"", []
            if not message:
                if connection is control:
                    return  # the grading process is done
                _end_kernels(started.pop(connection, []))
                waiting.unregister(connection)
                connection.close()
                continue
            sockets = [key.fileobj for key in waiting.get_map().values()]
            try:
                answer, pidfds = _spawn(sockets, json.loads(message), fds)
            except Exception:  # noqa: BLE001 (one kernel's failure is answered, the zygote goes on)
                answer, pidfds = {"error": traceback.format_exc(limit=3)}, []
            if pidfds and connection is not control:
                started.setdefault(connection, []).append(os.dup(pidfds[0]))
            socket.send_fds(connection, [json.dumps(answer).encode()], pidfds)
            for fd in pidfds:
                os.close(fd)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
