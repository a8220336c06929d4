// nginx server block for a static frontend (seed 002): unprivileged port, a health endpoint for
// probes, long-lived cache headers for fingerprinted assets, none for index.html (so a deploy is
// seen at once), and single-page-app fallback to index.html.

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

    location ~* \\.(?:js|mjs|css|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|eot)$ {
        add_header Cache-Control "public, max-age=${assetMaxAgeSeconds}, immutable" always;
        try_files $uri =404;
    }

    location / {
        add_header Cache-Control "no-cache" always;
        try_files $uri $uri/ /index.html;
    }
}
`;
}
