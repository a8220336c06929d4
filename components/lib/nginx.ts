// nginx server block for a static frontend (seed 002): unprivileged port, a health endpoint for
// probes, long-lived cache headers for fingerprinted assets (and none for a missing one), none for
// index.html (so a deploy is seen at once), and single-page-app fallback to index.html.

export const STATIC_HEALTH_PATH = "/healthz";

export function staticSiteConf(port: number, assetMaxAgeSeconds: number): string {
  return `server {
    listen ${port};
    server_name _;
    root /usr/share/nginx/html;
    index index.html;
    server_tokens off;

    location = ${STATIC_HEALTH_PATH} {
        access_log off;
        default_type text/plain;
        return 200 "ok\\n";
    }

    # Immutable only when found (no \`always\`: nginx then adds it to 2xx/3xx alone). A missing
    # asset, common while a rolling update serves old and new pages, gets a 404 that no cache
    # keeps: cached, it would outlive the rollout (404 is cacheable by default).
    location ~* \\.(?:js|mjs|css|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|eot)$ {
        add_header Cache-Control "public, max-age=${assetMaxAgeSeconds}, immutable";
        error_page 404 @missing_asset;
        try_files $uri =404;
    }

    location @missing_asset {
        add_header Cache-Control "no-store" always;
        return 404;
    }

    # index.html (and the app's routes, which fall back to it) is revalidated on every load, so a
    # deploy is seen at once; \`always\` keeps that on any status.
    location / {
        add_header Cache-Control "no-cache" always;
        try_files $uri $uri/ /index.html;
    }
}
`;
}
