package app

// DevConfig is devConfig, for the tests of what the dev stack decides.
var DevConfig = devConfig
