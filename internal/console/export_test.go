package console

// Load builds a Handler over another bundle (a test's fstest.MapFS).
var Load = load
