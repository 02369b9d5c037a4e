// The library's version, read from deno.json when the module graph is built, so the version an
// export names is always the one the package was published as.

import meta from "../deno.json" with { type: "json" };

/** The version of @lucid/nn (deno.json's `version`). */
export const VERSION: string = meta.version;
