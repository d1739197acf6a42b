/**
 * WWW-Authenticate challenges (RFC 7235) as registries send them:
 *   Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push"
 *   Basic realm="Registry Realm"
 */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

export const parseChallenges = (header: string): Challenge[] => {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i] as string)) i++;
    return s.slice(start, i);
  };
  while (i < s.length) {
    skipWs();
    const scheme = token();
    if (scheme === '') break;
    const params: Record<string, string> = {};
    for (;;) {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
      const save = i;
      const key = token();
      while (i < s.length && s[i] === ' ') i++;
      if (key === '' || s[i] !== '=') {
        i = save; // the next scheme starts here
        break;
      }
      i++;
      while (i < s.length && s[i] === ' ') i++;
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        value = token();
      }
      params[key.toLowerCase()] = value;
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
      if (s[i] === ',') i++;
      else break;
    }
    out.push({ scheme: scheme.toLowerCase(), params });
  }
  return out;
};
