/*
 * tools/gen_states.cpp — generates artefacts from src/shared/states.def.
 *
 *   gen_states sql-enum < file.sql.in   replaces @NODE_STATE_LABELS@ by the
 *                                       quoted, comma-separated labels
 *   gen_states markdown                 prints the README's state table
 *
 * Build-time tool, not linked into any server code.
 */
#include <iostream>
#include <string>

#include "states.hpp"

int
main(int argc, char **argv)
{
	std::string mode = argc > 1 ? argv[1] : "";
	if (mode == "markdown") {
		std::cout << "| state | meaning |\n|---|---|\n";
		for (const auto &s : autopilot::fsm::kStates)
			std::cout << "| `" << s.label << "` | " << s.doc << " |\n";
		return 0;
	}
	if (mode != "sql-enum") {
		std::cerr << "usage: gen_states sql-enum|markdown\n";
		return 2;
	}
	std::string labels;
	for (const auto &s : autopilot::fsm::kStates) {
		if (!labels.empty())
			labels += ", ";
		labels += "'" + std::string(s.label) + "'";
	}
	const std::string marker = "@NODE_STATE_LABELS@";
	std::string line;
	while (std::getline(std::cin, line)) {
		for (auto pos = line.find(marker); pos != std::string::npos; pos = line.find(marker))
			line.replace(pos, marker.size(), labels);
		std::cout << line << '\n';
	}
	return 0;
}
