//! The dashboard: a web application served by the API server under
//! `/dashboard/`, its files built into the binary.
//!
//! The files are public (as `/healthz` is): they hold no data. The page
//! signs in with a bearer token and makes every request to the API itself
//! with it, so authentication and RBAC decide what each user sees and does,
//! exactly as for `kubectl`. The exec console reaches the API over a
//! WebSocket, whose token travels in a subprotocol
//! (`authn::websocket_bearer`: a browser cannot set an `Authorization`
//! header there).

use hyper::{Response, StatusCode};

use super::body::{self, Body};

/// Where the dashboard is served.
pub const PATH: &str = "/dashboard/";

/// The files of the application: name, content type, contents.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "vendor/js-yaml.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/js-yaml.min.js"),
    ),
];

/// The answer to a GET of `path` when it is the dashboard's, else `None`.
/// `/` answers a browser (one that asks for HTML) with the dashboard too,
/// so a NodePort's root opens it; API clients never ask for HTML there.
pub fn serve(path: &str, accept: &str) -> Option<Response<Body>> {
    if path == "/" && accept.contains("text/html") || path == "/dashboard" {
        return Some(redirect(PATH));
    }
    let name = path.strip_prefix(PATH)?;
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return Some(
            Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header("Content-Type", "text/plain; charset=utf-8")
                .body(body::full("not found"))
                .expect("static response"),
        );
    };
    Some(
        secured(Response::builder())
            .header("Content-Type", *content_type)
            // The page itself is re-read so a new server's app loads; the
            // rest is named by the page.
            .header("Cache-Control", "no-cache")
            .body(body::full(*bytes))
            .expect("static response"),
    )
}

fn redirect(to: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("Location", to)
        .body(body::full(""))
        .expect("static response")
}

/// Headers that keep the page's own code the only code it runs, and the
/// page out of other sites' frames.
fn secured(b: hyper::http::response::Builder) -> hyper::http::response::Builder {
    b.header(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    )
    .header("X-Content-Type-Options", "nosniff")
    .header("Referrer-Policy", "no-referrer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_served_and_nothing_else() {
        let page = serve("/dashboard/", "").expect("the page");
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        assert_eq!(serve("/dashboard/app.js", "").unwrap().status(), 200);
        assert_eq!(serve("/dashboard/../secret", "").unwrap().status(), 404);
        assert_eq!(serve("/dashboard", "").unwrap().status(), 302);
        assert_eq!(serve("/", "text/html,*/*").unwrap().status(), 302);
        assert!(serve("/", "application/json").is_none());
        assert!(serve("/api/v1/pods", "text/html").is_none());
    }
}
