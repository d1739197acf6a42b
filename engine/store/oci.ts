/**
 * OCI image-spec and Docker schema2 documents as io-ts codecs (the single
 * source of their types). Unknown fields are kept out of the decoded value
 * but not rejected: the specs require readers to ignore them.
 */
import * as t from 'io-ts';
import { Digest } from './digest.js';

export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciLayout: 'application/vnd.oci.layout.header.v1+json',
} as const;

export const MANIFEST_TYPES: readonly string[] = [MediaType.OciManifest, MediaType.DockerManifest];
export const INDEX_TYPES: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];
export const isManifestType = (m: string | undefined): boolean => m !== undefined && MANIFEST_TYPES.includes(m);
export const isIndexType = (m: string | undefined): boolean => m !== undefined && INDEX_TYPES.includes(m);

const LAYER_TYPES = new Set<string>([
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.OciLayerZstd,
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  MediaType.DockerLayer,
  MediaType.DockerLayerGzip,
  MediaType.DockerForeignLayerGzip,
]);
export const isLayerType = (m: string): boolean => LAYER_TYPES.has(m);

export type Compression = 'none' | 'gzip' | 'zstd';
export const compressionOfMediaType = (m: string): Compression =>
  m.endsWith('+gzip') || m.endsWith('.tar.gzip') ? 'gzip' : m.endsWith('+zstd') ? 'zstd' : 'none';

const NonNegInt = t.refinement(t.number, (n) => Number.isSafeInteger(n) && n >= 0, 'non-negative integer');
const StringMap = t.record(t.string, t.string);

export const Platform = t.intersection([
  t.type({ architecture: t.string, os: t.string }),
  t.partial({ variant: t.string, 'os.version': t.string, 'os.features': t.array(t.string), features: t.array(t.string) }),
]);
export type Platform = t.TypeOf<typeof Platform>;

export const Descriptor = t.intersection([
  t.type({ mediaType: t.string, digest: Digest, size: NonNegInt }),
  t.partial({ urls: t.array(t.string), annotations: StringMap, platform: Platform, artifactType: t.string }),
], 'Descriptor');
export type Descriptor = t.TypeOf<typeof Descriptor>;

export const Manifest = t.intersection([
  t.type({ schemaVersion: t.literal(2), config: Descriptor, layers: t.array(Descriptor) }),
  t.partial({ mediaType: t.string, annotations: StringMap, subject: Descriptor, artifactType: t.string }),
], 'Manifest');
export type Manifest = t.TypeOf<typeof Manifest>;

export const Index = t.intersection([
  t.type({ schemaVersion: t.literal(2), manifests: t.array(Descriptor) }),
  t.partial({ mediaType: t.string, annotations: StringMap }),
], 'Index');
export type Index = t.TypeOf<typeof Index>;

export const HistoryEntry = t.partial({
  created: t.string,
  created_by: t.string,
  author: t.string,
  comment: t.string,
  empty_layer: t.boolean,
});
export type HistoryEntry = t.TypeOf<typeof HistoryEntry>;

const Nullable = <C extends t.Mixed>(c: C) => t.union([c, t.null]);

export const ContainerConfig = t.partial({
  User: t.string,
  ExposedPorts: Nullable(t.record(t.string, t.unknown)),
  Env: Nullable(t.array(t.string)),
  Entrypoint: Nullable(t.array(t.string)),
  Cmd: Nullable(t.array(t.string)),
  Volumes: Nullable(t.record(t.string, t.unknown)),
  WorkingDir: t.string,
  Labels: Nullable(StringMap),
  StopSignal: t.string,
  ArgsEscaped: t.boolean,
  Healthcheck: t.unknown,
});
export type ContainerConfig = t.TypeOf<typeof ContainerConfig>;

export const ImageConfig = t.intersection([
  t.type({
    architecture: t.string,
    os: t.string,
    rootfs: t.type({ type: t.literal('layers'), diff_ids: t.array(Digest) }),
  }),
  t.partial({
    created: t.string,
    author: t.string,
    variant: t.string,
    'os.version': t.string,
    config: Nullable(ContainerConfig),
    history: t.array(HistoryEntry),
  }),
], 'ImageConfig');
export type ImageConfig = t.TypeOf<typeof ImageConfig>;

/** The OCI layout's index.json: the same shape as an image index. */
export const LayoutIndex = Index;

export const OciLayoutFile = t.type({ imageLayoutVersion: t.string });

/** Annotation that holds the full reference a manifest is known by (as containerd writes). */
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
