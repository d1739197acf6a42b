# Runs inside the cgroup v2 guest (test/vm/run-in-vm.sh) with the cgroup test
# driver beside it; prints one "CHECK <name> <value>" line per observation,
# which test/native/cgroup.test.ts compares with what it expects.
D=/test/cgroup-driver
P=/berth-test-v2
G=/sys/fs/cgroup$P
check() { echo "CHECK $1 $2"; }
r() { cat "$G/$1" 2>&1 | tr '\n' ' ' | sed 's/ *$//'; }
utime() { awk '{print $14}' "/proc/$1/stat"; }

check mode "$($D mode)"

ALL='{"memory":{"limit":104857600,"reservation":52428800,"swap":157286400},
 "cpu":{"shares":1024,"quota":50000,"period":100000,"burst":1000,"idle":0,"cpus":"0","mems":"0"},
 "pids":{"limit":5},
 "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":7,"minor":0,"rate":1048576}],
            "throttleWriteIOPSDevice":[{"major":7,"minor":0,"rate":300}]},
 "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],
 "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}],
 "unified":{"memory.high":"94371840"}}'
$D create $P "$ALL" 2>&1
check create.rc "$?"
check root.subtree_control "$(cat /sys/fs/cgroup/cgroup.subtree_control)"
check memory.max "$(r memory.max)"
check memory.low "$(r memory.low)"
check memory.swap.max "$(r memory.swap.max)"
check memory.high "$(r memory.high)"
check cpu.weight "$(r cpu.weight)"
check cpu.max "$(r cpu.max)"
check cpu.max.burst "$(r cpu.max.burst)"
check cpu.idle "$(r cpu.idle)"
check cpuset.cpus "$(r cpuset.cpus)"
check cpuset.mems "$(r cpuset.mems)"
check pids.max "$(r pids.max)"
check io.max "$(r io.max)"
check io.weight "$(r io.weight)"
check hugetlb.2MB.max "$(r hugetlb.2MB.max)"

# A bad value in an update changes nothing, not even the good values beside it.
$D update $P '{"pids":{"limit":9},"cpu":{"shares":-2}}' 2>&1 | head -1 | sed 's/^/CHECK update.bad.error /'
check update.bad.pids.max "$(r pids.max)"
$D update $P '{"pids":{"limit":-1},"memory":{"limit":209715200,"swap":-1}}' 2>&1
check update.rc "$?"
check update.pids.max "$(r pids.max)"
check update.memory.max "$(r memory.max)"
check update.memory.swap.max "$(r memory.swap.max)"
$D update $P '{"cpu":{"shares":512}}' 2>&1
check cpu.weight.512 "$(r cpu.weight)"
$D update $P '{"cpu":{"shares":262144}}' 2>&1
check cpu.weight.262144 "$(r cpu.weight)"

# Behaviour: a process in the group.
pid=$($D spawn $P '{"pids":{"limit":5}}' busy)
sleep 0.3
check pids.list "$([ "$($D pids $P)" = "$pid" ] && echo match || echo "got '$($D pids $P)' want '$pid'")"
$D freeze $P 2>&1
check freeze.frozen "$($D frozen $P)"
check freeze.events "$(grep frozen "$G/cgroup.events")"
a=$(utime "$pid"); sleep 0.5; b=$(utime "$pid")
check freeze.utime.still "$([ "$a" = "$b" ] && echo yes || echo "no $a $b")"
$D thaw $P 2>&1
check thaw.frozen "$($D frozen $P)"
a=$(utime "$pid"); b=$a
for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.2; b=$(utime "$pid"); [ "$b" -gt "$a" ] && break; done
check thaw.utime.moves "$([ "$b" -gt "$a" ] && echo yes || echo "no $a $b")"
st=$($D stats $P)
echo "STATS $st"
$D kill $P 9 2>&1
sleep 0.2
check kill.pids "[$($D pids $P)]"
check kill.process "$([ -e "/proc/$pid" ] && [ "$(awk '{print $3}' /proc/$pid/stat)" != Z ] && echo alive || echo gone)"
$D destroy $P 2>&1
check destroy.rc "$?"
check destroy.gone "$([ -d "$G" ] && echo present || echo gone)"

# pids.max: 5 with the driver itself one of them.
$D exec $P '{"pids":{"limit":5}}' -- $D forkn 10 2>&1 | tr '\n' ' ' | sed 's/^/CHECK pids.forkn /'
echo

# eBPF device filter: deny all but /dev/zero, then an update that allows
# /dev/null replaces our first program (with both attached, null stays denied).
$D exec $P '{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":5,"access":"rw"}]}' -- $D open /dev/null 2>&1 | tr '\n' ' ' | sed 's/^/CHECK devices.null.denied /'
echo
$D create $P '{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":5,"access":"rw"}]}' 2>&1
$D exec $P '{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}' -- $D open /dev/null 2>&1 | tr '\n' ' ' | sed 's/^/CHECK devices.update.null.allowed /'
echo
$D exec $P '{"devices":[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]}' -- $D open /dev/null 2>&1 | tr '\n' ' ' | sed 's/^/CHECK devices.deny.write /'
echo
$D exec $P '{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}' -- $D open /dev/zero 2>&1 | tr '\n' ' ' | sed 's/^/CHECK devices.zero.denied /'
echo

# cgroup.kill reaches processes in child groups too.
$D create $P '{}'
pid=$($D spawn $P/child '{}' sleep)
$D kill $P 9 2>&1
sleep 0.2
check kill.nested "$([ -e "/proc/$pid" ] && [ "$(awk '{print $3}' /proc/$pid/stat)" != Z ] && echo alive || echo gone)"
$D destroy $P 2>&1
check destroy.nested.gone "$([ -d "$G" ] && echo present || echo gone)"

# What cgroup v2 lacks is refused by name, and nothing is left behind.
$D create $P '{"network":{"classID":1}}' 2>&1 | head -1 | sed 's/^/CHECK refuse.network /'
check refuse.network.gone "$([ -d "$G" ] && echo present || echo gone)"
$D create $P '{"cpu":{"realtimeRuntime":1000}}' 2>&1 | head -1 | sed 's/^/CHECK refuse.realtime /'
$D create $P '{"unified":{"memory.nosuchfile":"1"}}' 2>&1 | head -1 | sed 's/^/CHECK refuse.unified.missing /'
$D create $P '{"unified":{"../cgroup.procs":"1"}}' 2>&1 | head -1 | sed 's/^/CHECK refuse.unified.dotdot /'
$D create $P '{"memory":{"swap":100}}' 2>&1 | head -1 | sed 's/^/CHECK refuse.swap.nolimit /'
$D create $P '{"rdma":{"nosuchdev":{"hcaHandles":3}}}' 2>&1 | head -1 | sed 's/^/CHECK refuse.rdma.nodevice /'
check refuse.gone "$([ -d "$G" ] && echo present || echo gone)"

# A cgroup mount in new mount and cgroup namespaces shows the group as root.
mkdir -p /tmp/cgmnt
$D create $P '{"pids":{"limit":7}}'
$D mount $P /tmp/cgmnt -- cat /tmp/cgmnt/cgroup/pids.max 2>&1 | sed 's/^/CHECK mount.pids.max /'
$D destroy $P
check end "$(ls /sys/fs/cgroup | grep -c berth-test)"

# The whole runtime, when the test passed it a bundle: a container run by
# berth-runtime sees its own limits through its cgroup namespace.
if [ -x /test/berth-runtime ] && [ -f /test/config.json ] && [ -d /test/rootfs ]; then
  mkdir -p /tmp/bundle && cp /test/config.json /tmp/bundle/ && cp -a /test/rootfs /tmp/bundle/rootfs
  out=$(cd /tmp/bundle && /test/berth-runtime --root /run/berth run berth-test-ctr 2>&1)
  rc=$?
  echo "$out" | sed 's/^/CONTAINER /'
  check container.rc "$rc"
  check container.cgroups.left "$(ls /sys/fs/cgroup | grep -c berth)"
fi
