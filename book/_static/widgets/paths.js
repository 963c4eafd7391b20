// The widget manager (html-manager embed-amd) fetches its icon fonts from the folder RequireJS says each of its
// modules lives in: "@jupyter-widgets/html-manager/dist/" and "@jupyter-widgets/", resolved against the page,
// folders that do not exist in the book (404s in the console). Map both modules into the folder that holds the
// fonts vendored in _static/widgets/html-manager-dist/ (the bundle defines them itself; nothing else is fetched).
(function () {
  var dist = (document.documentElement.getAttribute("data-content_root") || "./") + "_static/widgets/html-manager-dist";
  window.require.config({ paths: { "@jupyter-widgets/html-manager/dist": dist, "@jupyter-widgets/html-manager": dist + "/html-manager" } });
})();
