/**
 * Narrow interfaces between the engine's parts, below the Engine facade.
 * The container runtime (engine/runtime) uses networking through
 * `ContainerNetworking` and knows nothing of bridges, IPAM or nftables.
 */
import type { ContainerNetworkInfo, NetworkAttachment, PortSpec } from './engine.js';

export interface NetworkSetupRequest {
  readonly containerId: string;
  readonly name: string;
  readonly hostname: string;
  readonly domainname?: string;
  /** "none", "host", "bridge", "container:<id>" (already resolved to an ID), or a network name. */
  readonly networkMode: string;
  /** Networks to join by name, with their aliases / fixed addresses. */
  readonly networks: Readonly<Record<string, NetworkAttachment>>;
  readonly ports: readonly PortSpec[];
  readonly publishAll: boolean;
  /** The image's EXPOSE list ("80/tcp"), for publishAll. */
  readonly exposedPorts: readonly string[];
  /** Extra /etc/hosts entries ("name:ip"), Docker's --add-host. */
  readonly extraHosts?: readonly string[];
}

/** Where a container in its own namespace will find its network, known before the setup is done. */
export interface NetworkNamespaceReady {
  /** The namespace, bound on this path and up (lo only: its veths come later). */
  readonly netnsPath: string;
  /** The files for /etc: they exist, and are written in place (bind mounts of them see what follows). */
  readonly hostsFile: string;
  readonly resolvConf: string;
  readonly hostnameFile: string;
}

export interface NetworkSetupOptions {
  /**
   * Called once, during a setup that makes a namespace of its own (bridge,
   * none, named networks), as soon as the namespace and the /etc files
   * exist: a container can be created in it while its veths, addresses and
   * records are still being made. Nothing may run in it before setup
   * resolves. Not called for host and container: modes, nor for a setup
   * already done.
   */
  readonly namespaceReady?: (ns: NetworkNamespaceReady) => void;
}

export interface NetworkSetupResult {
  /** The network namespace the container must join (an nsfs path); absent for "host". */
  readonly netnsPath?: string;
  /** Host files to bind-mount at /etc/hosts, /etc/resolv.conf and /etc/hostname. */
  readonly hostsFile: string;
  readonly resolvConf: string;
  readonly hostnameFile: string;
  readonly networks: Readonly<Record<string, ContainerNetworkInfo>>;
  /** Published ports with host ports resolved. */
  readonly ports: readonly PortSpec[];
}

export interface ContainerNetworking {
  /**
   * Everything a container's network needs before it starts: its netns, veths,
   * addresses, routes, published ports, name resolution files. Checks first
   * (unknown network, host port taken, address in use) and changes nothing
   * when a check fails. Idempotent for the same container.
   */
  setup(req: NetworkSetupRequest, opts?: NetworkSetupOptions): Promise<NetworkSetupResult>;
  /** Undoes setup. Idempotent; also finishes a teardown interrupted by a crash. */
  teardown(containerId: string): Promise<void>;
  /** Joins a running container to one more network. */
  connect(containerId: string, network: string, attachment: NetworkAttachment): Promise<ContainerNetworkInfo>;
  disconnect(containerId: string, network: string): Promise<void>;
}
