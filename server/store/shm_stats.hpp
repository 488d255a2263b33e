// `soukd stats --directory DIR [--prometheus]`: the counters of every soukd
// process that served DIR (daemon, SSH sessions, CGI processes), summed in
// the root's shared segment, plus the range cache's figures.
#pragma once

#include <string>

namespace souk::server {

// Run the command (argv[1] == "stats"). Returns the process exit status.
int stats_main(int argc, char** argv);

// The report for the segment of `root_realpath`, as JSON or Prometheus
// text. Sets *note when there is no usable segment (zeros are reported).
// `uid`: the soukd user whose segment to read (default: ours).
std::string stats_report(const std::string& root_realpath, bool prometheus, std::string* note);
std::string stats_report(const std::string& root_realpath, bool prometheus, unsigned uid, std::string* note);

}  // namespace souk::server
