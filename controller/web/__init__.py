"""The web console's static files (index.html, app.js, style.css; vendor/ holds hls.min.js,
installed by scripts/fetch_web_assets.sh). A package only so that wheels ship the files."""
