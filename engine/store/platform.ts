/**
 * Platforms (os, architecture, variant) and choosing one manifest from an
 * index for the host, the way containerd's platform matcher does.
 */
import * as os from 'node:os';
import type { Descriptor, Platform } from './oci.js';

const ARCH: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips64el: 'mips64le' };

export const hostPlatform = (): Platform => {
  const architecture = ARCH[process.arch] ?? process.arch;
  const p: Platform = { os: os.platform() === 'linux' ? 'linux' : os.platform(), architecture };
  if (architecture === 'arm64') return { ...p, variant: 'v8' };
  if (architecture === 'arm') return { ...p, variant: `v${(process.config.variables as Record<string, unknown>)['arm_version'] ?? '7'}` };
  return p;
};

/** "linux/arm64/v8" -> Platform */
export const parsePlatform = (s: string): Platform | undefined => {
  const [o, a, v] = s.split('/');
  if (!o || !a) return undefined;
  return v ? { os: o, architecture: a, variant: v } : { os: o, architecture: a };
};

export const formatPlatform = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

const normVariant = (p: Platform): string | undefined => (p.architecture === 'arm64' && (p.variant === undefined || p.variant === 'v8') ? 'v8' : p.variant);

/** Does `candidate` run on `want`? An arm v7 host also runs v6 and v5 images. */
export const platformMatches = (want: Platform, candidate: Platform): boolean => {
  if (want.os !== candidate.os || want.architecture !== candidate.architecture) return false;
  const wv = normVariant(want);
  const cv = normVariant(candidate);
  if (wv === undefined || cv === undefined) return true;
  if (want.architecture === 'arm') return Number(cv.slice(1)) <= Number(wv.slice(1));
  return wv === cv;
};

/** The best manifest in an index for `want`: an exact variant first, then a compatible one. */
export const choosePlatform = (manifests: readonly Descriptor[], want: Platform): Descriptor | undefined => {
  const fits = manifests.filter((m) => m.platform !== undefined && platformMatches(want, m.platform));
  const exact = fits.find((m) => normVariant(m.platform as Platform) === normVariant(want));
  if (exact) return exact;
  return fits.sort((a, b) => Number((b.platform?.variant ?? 'v0').slice(1)) - Number((a.platform?.variant ?? 'v0').slice(1)))[0];
};
