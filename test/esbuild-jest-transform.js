// jest transform: TypeScript to CommonJS with esbuild (already a build dependency), so the
// tests need no second compiler. Type checking is `tsc --noEmit`'s job, run by `npm test`.
const { transformSync } = require('esbuild');

module.exports = {
  process(source, filename) {
    const result = transformSync(source, {
      loader: 'ts',
      format: 'cjs',
      target: 'node20',
      sourcemap: 'inline',
      sourcefile: filename,
    });
    return { code: result.code };
  },
};
