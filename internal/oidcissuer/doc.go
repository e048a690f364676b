// Package oidcissuer is an OpenID Connect issuer over real HTTPS (discovery
// document and JWKS, RSA keys made at start and rotatable) and the signing of
// its tokens, for the REST API's tests and the reliability program: the API's
// OIDC authenticator fetches its keys as it would from a real identity
// provider, so a token is refused for what is wrong with it, not for a key it
// never saw.
package oidcissuer
