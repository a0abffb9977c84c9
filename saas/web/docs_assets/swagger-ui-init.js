// Starts Swagger UI with the settings the page carries as JSON: the docs pages'
// Content-Security-Policy runs no inline script.
window.ui = SwaggerUIBundle(JSON.parse(document.getElementById("swagger-ui-config").textContent));
