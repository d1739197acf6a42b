/**
 * A mount as a value: what the store hands to whoever performs mounts (the
 * runtime, in the container's mount namespace). Same shape as the OCI
 * runtime spec's mounts and containerd's mount.Mount.
 */
export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly target: string;
  readonly options: readonly string[];
}
