/**
 * Stacks from TypeScript: typed constructors that build the same document
 * Berth's YAML files hold, decoded and validated by the same codecs.
 *
 *   const s = stack('web');
 *   const img = s.image('busybox', { ref: 'berth.local/busybox:1', import: './rootfs.tar' });
 *   const net = s.network('front');
 *   const data = s.volume('content');
 *   const web = s.container('web', { image: img, networks: [net], mounts: [{ volume: data, target: '/www' }], ports: ['8080:80'] });
 *   s.container('client', { image: img, dependsOn: [web], command: ['wget', '-qO-', 'http://web/'] , networks: [net] });
 *   const result = s.build();   // Either<EngineError (InvalidSpec), Stack>
 */
import * as E from 'fp-ts/lib/Either.js';
import type { PortSpec } from '../engine/engine.js';
import { invalidSpec, type EngineError } from '../engine/errors.js';
import { mergeDocuments } from './model/load.js';
import type { DependCondition } from './model/resources.js';
import { validateStack, type Stack } from './model/stack.js';

export type { Stack } from './model/stack.js';
export type { ContainerResource, ImageResource, NetworkResource, VolumeResource } from './model/resources.js';
export { loadStack } from './model/load.js';
export { desiredState } from './reconcile/desired.js';
export { plan, isEmpty, planJson, type Plan, type Change, type Observed } from './reconcile/plan.js';
export { apply, type ApplyEvent, type ApplyResult, type ApplyOptions } from './reconcile/apply.js';
export { observe, planFor, sourceDigests } from './reconcile/observe.js';

export interface ImageHandle { readonly kind: 'image'; readonly key: string }
export interface NetworkHandle { readonly kind: 'network'; readonly key: string }
export interface VolumeHandle { readonly kind: 'volume'; readonly key: string }
export interface ContainerHandle { readonly kind: 'container'; readonly key: string }

export interface ImageInput {
  readonly ref: string;
  /** A root filesystem tarball to import (offline). */
  readonly import?: string;
  /** An image archive (`docker save` / OCI layout tar) to load. */
  readonly archive?: string;
  readonly build?: string | { readonly context: string; readonly dockerfile?: string; readonly args?: Record<string, string> };
  readonly pull?: 'missing' | 'always';
  readonly config?: { readonly entrypoint?: readonly string[]; readonly cmd?: readonly string[]; readonly env?: Record<string, string> | readonly string[]; readonly workingDir?: string; readonly user?: string };
}

export interface NetworkInput { readonly subnet?: string; readonly gateway?: string; readonly ipRange?: string; readonly internal?: boolean; readonly labels?: Record<string, string> }
export interface VolumeInput { readonly labels?: Record<string, string>; readonly options?: Record<string, string> }

export type MountInput =
  | string
  | { readonly volume: VolumeHandle; readonly target: string; readonly readOnly?: boolean }
  | { readonly type: 'bind'; readonly source: string; readonly target: string; readonly readOnly?: boolean }
  | { readonly type: 'tmpfs'; readonly target: string; readonly size?: number | string };

export interface ContainerInput {
  readonly image: ImageHandle | string;
  readonly entrypoint?: readonly string[] | string;
  readonly command?: readonly string[] | string;
  readonly env?: Record<string, string | number | boolean> | readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  readonly hostname?: string;
  readonly labels?: Record<string, string>;
  readonly readOnlyRootfs?: boolean;
  readonly mounts?: readonly MountInput[];
  readonly ports?: readonly (string | number | PortSpec)[];
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  readonly privileged?: boolean;
  readonly resources?: { readonly memory?: number | string; readonly cpus?: number; readonly pidsLimit?: number; readonly cpuShares?: number; readonly memoryReservation?: number | string; readonly cpusetCpus?: string };
  readonly restart?: 'no' | 'always' | 'unless-stopped' | 'on-failure' | `on-failure:${number}`;
  readonly healthcheck?: { readonly test: string | readonly string[]; readonly interval?: string; readonly timeout?: string; readonly retries?: number; readonly startPeriod?: string };
  readonly networks?: readonly NetworkHandle[] | readonly { readonly network: NetworkHandle; readonly aliases?: readonly string[]; readonly ipv4Address?: string }[];
  readonly dependsOn?: readonly (ContainerHandle | { readonly container: ContainerHandle; readonly condition: DependCondition })[];
  readonly stopSignal?: string;
  readonly stopTimeout?: number;
  readonly init?: boolean;
  readonly tty?: boolean;
}

export interface StackBuilder {
  readonly name: string;
  image(key: string, input: ImageInput): ImageHandle;
  network(key: string, input?: NetworkInput): NetworkHandle;
  volume(key: string, input?: VolumeInput): VolumeHandle;
  container(key: string, input: ContainerInput): ContainerHandle;
  /** The validated stack, or every problem at once (paths as in a stack file). */
  build(): E.Either<EngineError, Stack>;
}

const isHandle = (x: unknown): x is { kind: string; key: string } =>
  typeof x === 'object' && x !== null && 'kind' in x && 'key' in x;

/** A new stack. `source` names it in error messages (default "<name>.ts"). */
export const stack = (name: string, source = `${name}.ts`): StackBuilder => {
  const doc = { stack: name, images: {} as Record<string, unknown>, networks: {} as Record<string, unknown>, volumes: {} as Record<string, unknown>, containers: {} as Record<string, unknown> };
  const duplicates: string[] = [];
  const put = (group: keyof Omit<typeof doc, 'stack'>, key: string, value: unknown): void => {
    if (key in doc[group]) duplicates.push(`${source}: ${group}.${key}: declared twice`);
    doc[group][key] = value;
  };
  return {
    name,
    image(key, input) {
      put('images', key, input);
      return { kind: 'image', key };
    },
    network(key, input = {}) {
      put('networks', key, input);
      return { kind: 'network', key };
    },
    volume(key, input = {}) {
      put('volumes', key, input);
      return { kind: 'volume', key };
    },
    container(key, input) {
      const { image, mounts, networks, dependsOn, ...rest } = input;
      put('containers', key, {
        ...rest,
        image: isHandle(image) ? image.key : image,
        ...(mounts ? { mounts: mounts.map((m) => (typeof m === 'object' && 'volume' in m ? { type: 'volume', source: m.volume.key, target: m.target, ...(m.readOnly ? { readOnly: true } : {}) } : m)) } : {}),
        ...(networks ? {
          networks: Object.fromEntries(networks.map((n) => (isHandle(n) ? [n.key, {}] : [n.network.key, { ...(n.aliases ? { aliases: n.aliases } : {}), ...(n.ipv4Address ? { ipv4Address: n.ipv4Address } : {}) }]))),
        } : {}),
        ...(dependsOn ? {
          dependsOn: Object.fromEntries(dependsOn.map((d) => (isHandle(d) ? [d.key, { condition: 'started' }] : [d.container.key, { condition: d.condition }]))),
        } : {}),
      });
      return { kind: 'container', key };
    },
    build() {
      const merged = mergeDocuments([{ file: source, doc }], name);
      if (E.isLeft(merged)) return E.left(invalidSpec(source, [...duplicates, ...merged.left]));
      const problems = [...duplicates, ...validateStack(merged.right)];
      return problems.length > 0 ? E.left(invalidSpec(source, problems)) : E.right(merged.right);
    },
  };
};
