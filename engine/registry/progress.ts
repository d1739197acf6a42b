/** Progress events of a pull or push, for a CLI to draw (bars on a TTY) or log. */
export type ProgressEvent =
  | { readonly kind: 'resolved'; readonly reference: string; readonly digest: string; readonly layers: number }
  | { readonly kind: 'layer'; readonly digest: string; readonly state: 'exists' | 'waiting' | 'downloading' | 'unpacking' | 'uploading' | 'mounted' | 'done'; readonly current: number; readonly total: number }
  | { readonly kind: 'done'; readonly reference: string; readonly digest: string };

export type ProgressSink = (e: ProgressEvent) => void;
