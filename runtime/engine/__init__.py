"""The engine: each operation on a container in a module of its own, over the state record and the
layers below (init/, rootfs, cgroups/, network/, console, hooks, stdio, ...). Importing this package
imports nothing else: a command imports the one operation it runs, so `state`, `kill` and `delete` stay
off create's modules.

    container.py   Container (a state directory under its lock, with its record), its processes
                   (container_pids, judge), require_cgroup, write_pid_file, remove_dir
    create.py      create: state directory, cgroup, the init (runtime.init.spawn), network; undone on failure
    start.py       start: release the exec fifo, poststart hooks
    run.py         run: create + start, then in the foreground forward signals, reap, delete
    kill.py        kill, kill_all (cgroup.kill where it is the container's alone)
    delete.py      delete, destroy (kill what is left, remove cgroup and state), poststop hooks
    exec.py        exec: the process from --process or the stored config with exec's flags, spawn_in
    pause.py       pause, resume (the cgroup freezer)
    update.py      update (the cgroup's resources)
    ps.py          ps: the container's pids, the host's `ps` filtered to them
    events.py      events: stats and oom events until the container stops
    list.py        list: the state rows of every container
    checkpoint.py  checkpoint / restore: arguments checked, CRIU asked, refused in one line

Every step that changes the host is undone when a later one fails, so a failed create leaves nothing
behind; a pyrun killed half-way leaves a "creating" record that `delete --force` cleans."""
