// Starts Swagger UI on the /docs page (raiox.kit.apidocs). A file rather than an inline <script>, which the
// Content-Security-Policy (script-src 'self') blocks; the OpenAPI document's URL comes from the page
// (data-openapi-url), so that it follows the app's root_path.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
