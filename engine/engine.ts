/**
 * The Engine facade: all that the reconciler, the CLI, the Pulumi provider
 * and the agent see of the engine (DESIGN.md, "The Engine facade").
 *
 * Groups carry Docker's verb names. Every method either resolves or throws
 * an `EngineFailure` carrying a tagged `EngineError` (errors.ts); callers
 * branch on the tag and render the error once, at their edge.
 *
 * Vocabulary:
 * - A container *ref* is what a user types: a full ID, a unique ID prefix, or
 *   a name (`web`, with or without Docker's leading `/`).
 * - An image *ref* is a reference as Docker users write it (`busybox`,
 *   `host:5000/team/app:1.2`, `app@sha256:...`) or an image ID (prefix).
 * - Specs are inputs, normalized by the engine (defaults filled in); `Info`
 *   values are observations and carry the normalized spec they were created
 *   from, so that a reconciler can diff declared against actual without
 *   perpetual differences from defaults.
 */

/* ------------------------------------------------------------------ images */

export interface ProgressEvent {
  /** Which item moves: a layer digest, "manifest", a container name... */
  readonly id: string;
  readonly phase: 'waiting' | 'downloading' | 'verifying' | 'extracting' | 'exists' | 'done' | 'pushing';
  readonly current?: number;
  readonly total?: number;
}
export type ProgressSink = (ev: ProgressEvent) => void;

export interface ImageInfo {
  /** The config digest, "sha256:..." (Docker's image ID). */
  readonly id: string;
  /** Every name pointing at it, fully qualified ("docker.io/library/busybox:latest"). */
  readonly names: readonly string[];
  /** Digest of the manifest (or index) the names point at. */
  readonly digest: string;
  readonly created?: string;
  readonly size: number;
  readonly architecture: string;
  readonly os: string;
  readonly config: ImageRuntimeConfig;
  readonly labels: Readonly<Record<string, string>>;
}

/** What a container takes from its image (the OCI image config's `config`). */
export interface ImageRuntimeConfig {
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  readonly exposedPorts?: readonly string[]; // "80/tcp"
  readonly volumes?: readonly string[];
  readonly stopSignal?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly healthcheck?: HealthcheckSpec;
}

export interface ImageApi {
  pullImage(ref: string, opts?: { platform?: string; onProgress?: ProgressSink }): Promise<ImageInfo>;
  pushImage(ref: string, opts?: { onProgress?: ProgressSink }): Promise<{ digest: string }>;
  listImages(): Promise<ImageInfo[]>;
  inspectImage(ref: string): Promise<ImageInfo>;
  removeImage(ref: string, opts?: { force?: boolean }): Promise<{ untagged: string[]; deleted: string[] }>;
  tagImage(source: string, target: string): Promise<void>;
  saveImages(refs: readonly string[], outputPath: string): Promise<void>;
  loadImages(inputPath: string): Promise<string[]>;
  importImage(tarPath: string, ref: string, opts?: { changes?: Partial<ImageRuntimeConfig> }): Promise<ImageInfo>;
  pruneImages(opts?: { all?: boolean }): Promise<{ deleted: string[]; reclaimedBytes: number }>;
}

/* ------------------------------------------------------------------ builds */

/** `docker build` (the classic builder's semantics): engine/build/README.md. */
export interface BuildSpec {
  /** The build context: a directory; COPY and ADD never read outside it. */
  readonly context: string;
  /** The Dockerfile: absolute, or relative to the context. Default: <context>/Dockerfile. */
  readonly dockerfile?: string;
  /** Names for the result (`app:1.2`); none: the image is made but left unnamed. */
  readonly tags: readonly string[];
  /** `--build-arg NAME=value`. */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Build up to this stage (`FROM x AS name`) and make it the result. */
  readonly target?: string;
  /** Run every step, using no cached result (results are still cached for later builds). */
  readonly noCache?: boolean;
  /** Labels added to the result (`docker build --label`), as a last LABEL step. */
  readonly labels?: Readonly<Record<string, string>>;
  readonly onProgress?: (ev: BuildEvent) => void;
}

export type BuildEvent =
  /** A step begins: `Step 2/5 : RUN make`. */
  | { readonly type: 'step'; readonly step: number; readonly total: number; readonly instruction: string }
  /** The step's result came from the cache. */
  | { readonly type: 'cached' }
  /** A RUN step's container, and its removal after the step. */
  | { readonly type: 'running'; readonly container: string }
  | { readonly type: 'removed'; readonly container: string }
  /** Output of a RUN step (or a note of the builder's). */
  | { readonly type: 'output'; readonly stream: 'stdout' | 'stderr'; readonly text: string }
  /** A step ended with this image (config digest). */
  | { readonly type: 'done'; readonly imageId: string }
  | { readonly type: 'warning'; readonly text: string };

export interface BuildResult {
  /** The image ID (config digest). */
  readonly id: string;
  /** The manifest digest the names point at. */
  readonly digest: string;
  /** The names given, fully qualified. */
  readonly names: readonly string[];
  readonly steps: number;
  /** Steps whose result came from the cache. */
  readonly cached: number;
}

export interface BuildApi {
  buildImage(spec: BuildSpec): Promise<BuildResult>;
}

/* -------------------------------------------------------------- containers */

export type RestartPolicyName = 'no' | 'always' | 'on-failure' | 'unless-stopped';
export interface RestartPolicy {
  readonly name: RestartPolicyName;
  /** Only for on-failure; 0 means unlimited. */
  readonly maximumRetryCount?: number;
}

export interface HealthcheckSpec {
  /** ["CMD", "arg"...], ["CMD-SHELL", "cmd"] or ["NONE"]. */
  readonly test: readonly string[];
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly retries?: number;
  readonly startPeriodMs?: number;
}

export type MountSpec =
  | { readonly type: 'bind'; readonly source: string; readonly target: string; readonly readOnly?: boolean;
      readonly propagation?: 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave' }
  /** A named volume (created on first use when missing), or anonymous when `source` is absent. */
  | { readonly type: 'volume'; readonly source?: string; readonly target: string; readonly readOnly?: boolean;
      readonly noCopy?: boolean }
  | { readonly type: 'tmpfs'; readonly target: string; readonly sizeBytes?: number; readonly mode?: number;
      readonly readOnly?: boolean };

export interface PortSpec {
  readonly containerPort: number;
  readonly protocol: 'tcp' | 'udp';
  /** Absent or 0: a free port chosen by the engine. */
  readonly hostPort?: number;
  /** Absent: every host address ("0.0.0.0"). */
  readonly hostIp?: string;
}

export interface NetworkAttachment {
  readonly aliases?: readonly string[];
  readonly ipv4Address?: string;
}

export interface DeviceSpec {
  readonly hostPath: string;
  readonly containerPath: string;
  readonly permissions: string; // "rwm"
}

export interface UlimitSpec {
  readonly name: string; // "nofile"
  readonly soft: number;
  readonly hard: number;
}

export interface ResourceSpec {
  /** Bytes; 0/absent: unlimited. */
  readonly memory?: number;
  /** Memory + swap in bytes; -1 unlimited swap. */
  readonly memorySwap?: number;
  readonly memoryReservation?: number;
  /** Fractional CPUs (Docker's --cpus). */
  readonly cpus?: number;
  readonly cpuShares?: number;
  readonly cpusetCpus?: string;
  readonly cpusetMems?: string;
  readonly pidsLimit?: number;
  readonly blkioWeight?: number;
}

export interface ContainerSpec {
  readonly name?: string;
  readonly image: string;
  readonly entrypoint?: readonly string[];
  readonly command?: readonly string[];
  /** "KEY=value" entries, merged over the image's env. */
  readonly env?: readonly string[];
  readonly workingDir?: string;
  /** "name", "uid", "uid:gid" or "name:group", resolved in the image's /etc/passwd and /etc/group. */
  readonly user?: string;
  readonly hostname?: string;
  readonly domainname?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly readOnlyRootfs?: boolean;
  readonly mounts?: readonly MountSpec[];
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  readonly privileged?: boolean;
  readonly devices?: readonly DeviceSpec[];
  readonly ulimits?: readonly UlimitSpec[];
  readonly sysctls?: Readonly<Record<string, string>>;
  readonly resources?: ResourceSpec;
  readonly stopSignal?: string;
  readonly stopTimeoutSeconds?: number;
  readonly init?: boolean;
  readonly tty?: boolean;
  readonly openStdin?: boolean;
  readonly restartPolicy?: RestartPolicy;
  readonly autoRemove?: boolean;
  readonly healthcheck?: HealthcheckSpec;
  /** "none", "host", "bridge" (the default network), "container:<ref>", or a network name. */
  readonly networkMode?: string;
  /** User-defined networks to join, by name (the first may also be networkMode). */
  readonly networks?: Readonly<Record<string, NetworkAttachment>>;
  readonly ports?: readonly PortSpec[];
  /** Publish every port the image EXPOSEs on a free host port (-P). */
  readonly publishAll?: boolean;
  /** Extra /etc/hosts entries, "name:ip" (Docker's --add-host). */
  readonly extraHosts?: readonly string[];
  readonly security?: {
    /** "unconfined", "default", or a path to a seccomp profile JSON. */
    readonly seccomp?: string;
    readonly noNewPrivileges?: boolean;
  };
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'dead';

export interface ContainerState {
  readonly status: ContainerStatus;
  readonly pid?: number;
  readonly exitCode?: number;
  readonly oomKilled?: boolean;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly restartCount: number;
  readonly health?: { readonly status: 'starting' | 'healthy' | 'unhealthy'; readonly failingStreak: number };
  /** Why the last start failed, if it did. */
  readonly error?: string;
}

export interface ContainerNetworkInfo {
  readonly networkId: string;
  readonly ipv4Address?: string; // "10.88.0.5/16"
  readonly gateway?: string;
  readonly macAddress?: string;
  readonly aliases: readonly string[];
}

export interface ContainerInfo {
  readonly id: string;
  readonly name: string;
  readonly created: string;
  /** The image reference as given, and the image ID it resolved to. */
  readonly image: string;
  readonly imageId: string;
  /** The normalized spec the container was created from (defaults filled in). */
  readonly spec: ContainerSpec;
  readonly state: ContainerState;
  readonly networks: Readonly<Record<string, ContainerNetworkInfo>>;
  /** Ports as published, host ports resolved. */
  readonly ports: readonly PortSpec[];
}

export interface ContainerFilter {
  readonly all?: boolean;
  /** Docker's --filter keys: name, id, label (k or k=v), status, ancestor, network. */
  readonly filters?: Readonly<Record<string, readonly string[]>>;
}

export interface LogLine {
  readonly stream: 'stdout' | 'stderr';
  readonly time: string; // RFC 3339 with nanoseconds
  readonly text: string;
}

export interface ExecSpec {
  readonly command: readonly string[];
  readonly env?: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  readonly tty?: boolean;
  readonly stdin?: boolean;
  readonly detach?: boolean;
  readonly privileged?: boolean;
}

export interface ContainerStats {
  readonly cpuUsageNanos: number;
  readonly cpuPercent?: number;
  readonly memoryUsageBytes: number;
  readonly memoryLimitBytes?: number;
  readonly pids: number;
  readonly blockReadBytes: number;
  readonly blockWriteBytes: number;
  readonly netRxBytes?: number;
  readonly netTxBytes?: number;
}

export interface ContainerApi {
  createContainer(spec: ContainerSpec): Promise<ContainerInfo>;
  startContainer(ref: string): Promise<void>;
  stopContainer(ref: string, opts?: { timeoutSeconds?: number }): Promise<void>;
  restartContainer(ref: string, opts?: { timeoutSeconds?: number }): Promise<void>;
  killContainer(ref: string, signal?: string): Promise<void>;
  removeContainer(ref: string, opts?: { force?: boolean; volumes?: boolean }): Promise<void>;
  /**
   * What a container's shim runs when a container that nobody waits for has exited (podman's
   * `container cleanup`): the exit folded into its record, its network and mounts released, an --rm
   * container removed. Nothing for a running container, or one already gone.
   */
  cleanupContainer(id: string): Promise<void>;
  listContainers(filter?: ContainerFilter): Promise<ContainerInfo[]>;
  inspectContainer(ref: string): Promise<ContainerInfo>;
  logs(ref: string, opts?: { follow?: boolean; tail?: number; since?: Date; signal?: AbortSignal }): AsyncIterable<LogLine>;
  /** Runs a process; resolves with its exit code (0 when detached). stdio: the caller's. */
  exec(ref: string, spec: ExecSpec): Promise<{ exitCode: number }>;
  waitContainer(ref: string, opts?: { signal?: AbortSignal }): Promise<{ exitCode: number }>;
  pauseContainer(ref: string): Promise<void>;
  resumeContainer(ref: string): Promise<void>;
  /** In place, through the runtime's `update`; also restart policy. */
  updateContainer(ref: string, update: { resources?: ResourceSpec; restartPolicy?: RestartPolicy }): Promise<void>;
  renameContainer(ref: string, newName: string): Promise<void>;
  statsContainer(ref: string): Promise<ContainerStats>;
}

/* ---------------------------------------------------------------- networks */

export interface NetworkSpec {
  readonly name: string;
  readonly driver?: 'bridge';
  readonly subnet?: string; // "10.89.0.0/24"
  readonly gateway?: string;
  readonly ipRange?: string;
  readonly internal?: boolean;
  readonly ipv6?: boolean;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface NetworkInfo {
  readonly id: string;
  readonly name: string;
  readonly created: string;
  /** The normalized spec (subnet and gateway filled in when they were chosen). */
  readonly spec: NetworkSpec;
  /** The host bridge, e.g. "berth0". */
  readonly bridge: string;
  /** Attached containers by ID. */
  readonly containers: Readonly<Record<string, { readonly name: string; readonly ipv4Address: string }>>;
}

export interface NetworkApi {
  createNetwork(spec: NetworkSpec): Promise<NetworkInfo>;
  removeNetwork(ref: string): Promise<void>;
  listNetworks(): Promise<NetworkInfo[]>;
  inspectNetwork(ref: string): Promise<NetworkInfo>;
  connectNetwork(network: string, container: string, attachment?: NetworkAttachment): Promise<void>;
  disconnectNetwork(network: string, container: string, opts?: { force?: boolean }): Promise<void>;
  pruneNetworks(): Promise<{ deleted: string[] }>;
}

/* ----------------------------------------------------------------- volumes */

export interface VolumeSpec {
  readonly name: string;
  readonly driver?: 'local';
  readonly labels?: Readonly<Record<string, string>>;
  /** The local driver's options (as `docker volume create -o`): type, device, o. */
  readonly options?: Readonly<Record<string, string>>;
}

export interface VolumeInfo {
  readonly name: string;
  readonly created: string;
  readonly spec: VolumeSpec;
  readonly mountpoint: string;
  /** IDs of containers that use it. */
  readonly usedBy: readonly string[];
}

export interface VolumeApi {
  createVolume(spec: VolumeSpec): Promise<VolumeInfo>;
  removeVolume(name: string, opts?: { force?: boolean }): Promise<void>;
  listVolumes(): Promise<VolumeInfo[]>;
  inspectVolume(name: string): Promise<VolumeInfo>;
  pruneVolumes(): Promise<{ deleted: string[]; reclaimedBytes: number }>;
}

/* ------------------------------------------------------------------ events */

export type EngineEvent =
  | { readonly type: 'container'; readonly action: 'create' | 'start' | 'die' | 'oom' | 'stop' | 'kill' | 'pause' | 'unpause' | 'destroy' | 'rename' | 'update' | 'health_status';
      readonly id: string; readonly name: string; readonly time: string; readonly exitCode?: number; readonly health?: string }
  | { readonly type: 'image'; readonly action: 'pull' | 'push' | 'tag' | 'untag' | 'delete' | 'load' | 'import';
      readonly id: string; readonly ref?: string; readonly time: string }
  | { readonly type: 'network'; readonly action: 'create' | 'connect' | 'disconnect' | 'destroy';
      readonly id: string; readonly name: string; readonly container?: string; readonly time: string }
  | { readonly type: 'volume'; readonly action: 'create' | 'mount' | 'unmount' | 'destroy';
      readonly name: string; readonly time: string };

export interface EventsApi {
  /** Events from now on (or replayed since `since`), until `signal` aborts. */
  events(opts?: { since?: Date; signal?: AbortSignal }): AsyncIterable<EngineEvent>;
}

export interface Engine extends ImageApi, BuildApi, ContainerApi, NetworkApi, VolumeApi, EventsApi {
  /** Releases what the engine holds open (watchers, sockets). Containers keep running. */
  close(): Promise<void>;
}

/** Where an engine keeps its state (DESIGN.md "Roots"). */
export interface EngineRoots {
  /** Persistent state: images, layers, containers, volumes, networks. Default /var/lib/berth. */
  readonly root: string;
  /** Runtime state: runtime and shim state, netns files, locks. Default /run/berth. */
  readonly runRoot: string;
}

export const defaultRoots = (env: NodeJS.ProcessEnv = process.env): EngineRoots => ({
  root: env['BERTH_ROOT'] ?? '/var/lib/berth',
  runRoot: env['BERTH_RUN_ROOT'] ?? (env['BERTH_ROOT'] ? `${env['BERTH_ROOT']}/run` : '/run/berth'),
});
