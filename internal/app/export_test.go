package app

// NewCertReloader gives the tests in package app_test the certificate reloader of --tls-cert.
var NewCertReloader = newCertReloader
