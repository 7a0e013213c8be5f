package app

// NewCertReloader gives the tests in package app_test the certificate reloader of --tls-cert.
var NewCertReloader = newCertReloader

// Operations lists what the server's API serves, for the fuzz target that covers each.
func Operations(s *Server) []string { return s.api.Operations() }
