# Runs inside a pure cgroup v1 guest (BERTH_VM_CGROUP=v1 test/vm/run-in-vm.sh)
# with the cgroup test driver beside it: controllers co-mounted as
# cpu,cpuacct and net_cls,net_prio (unlike the test hosts), no cgroup2 at
# all. Prints "CHECK <name> <value>" lines for test/native/cgroup.test.ts.
D=/test/cgroup-driver
P=/berth-test-v1
C=/sys/fs/cgroup
check() { echo "CHECK $1 $2"; }
r() { cat "$C/$1$P/$2" 2>&1 | tr '\n' ' ' | sed 's/ *$//'; }

check mode "$($D mode)"
$D create $P '{"memory":{"limit":104857600,"swap":157286400,"swappiness":20},
 "cpu":{"shares":256,"quota":30000,"period":100000,"cpus":"1","mems":"0"},
 "pids":{"limit":6},
 "hugepageLimits":[{"pageSize":"2MB","limit":2097152}],
 "network":{"classID":1048577,"priorities":[{"name":"lo","priority":5}]},
 "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}' 2>&1
check create.rc "$?"
check cpu.shares "$(r cpu,cpuacct cpu.shares)"
check cpu.cfs_quota_us "$(r cpu,cpuacct cpu.cfs_quota_us)"
check cpuset.cpus "$(r cpuset cpuset.cpus)"
check memory.limit "$(r memory memory.limit_in_bytes)"
check memory.memsw "$(r memory memory.memsw.limit_in_bytes)"
check memory.swappiness "$(r memory memory.swappiness)"
check pids.max "$(r pids pids.max)"
check hugetlb.2MB "$(r hugetlb hugetlb.2MB.limit_in_bytes)"
check net_cls.classid "$(r net_cls,net_prio net_cls.classid)"
check net_prio.lo "$(grep '^lo ' "$C/net_cls,net_prio$P/net_prio.ifpriomap")"
check devices.list "$(r devices devices.list)"
check systemd.dir "$([ -d "$C/systemd$P" ] && echo present || echo missing)"

pid=$($D spawn $P '{}' busy)
sleep 0.3
check enter.cgroup "$(grep -c ":$P\$" "/proc/$pid/cgroup") of $(wc -l < "/proc/$pid/cgroup")"
$D freeze $P 2>&1
check freeze.state "$(r freezer freezer.state)"
$D thaw $P 2>&1
check thaw.state "$(r freezer freezer.state)"
echo "STATS $($D stats $P)"
$D kill $P 9 2>&1
sleep 0.2
check kill.pids "[$($D pids $P)]"

# The container's view: each hierarchy by its own name, the co-mounted ones
# reachable by either controller's name.
mkdir -p /tmp/cgmnt
$D mount $P /tmp/cgmnt -- sh -c 'cd /tmp/cgmnt/cgroup && echo $(ls) && readlink cpu && cat cpuacct/cpu.shares' 2>&1 |
  tr '\n' '|' | sed 's/^/CHECK mount.view /'
echo
$D destroy $P 2>&1
check destroy.rc "$?"
check end "$(ls -d $C/*/berth-test* 2>/dev/null | wc -l)"
