// Entry point: validate the stack's configuration (nothing is registered if it is wrong), build
// the platform, and export what an operator needs as stack outputs. See README.md.
import { loadConfig } from "./config/loader";
import { buildPlatform } from "./components/build";

export = buildPlatform(loadConfig()).outputs;
