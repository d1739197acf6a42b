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
  setup(req: NetworkSetupRequest): Promise<NetworkSetupResult>;
  /** Undoes setup. Idempotent; also finishes a teardown interrupted by a crash. */
  teardown(containerId: string): Promise<void>;
  /** Joins a running container to one more network. */
  connect(containerId: string, network: string, attachment: NetworkAttachment): Promise<ContainerNetworkInfo>;
  disconnect(containerId: string, network: string): Promise<void>;
}
