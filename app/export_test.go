package app

// DevConfig is devConfig, for the tests of what the dev stack decides.
var DevConfig = devConfig

// DataDirFlag is dataDirFlag, for the test of dev's banner.
var DataDirFlag = dataDirFlag
