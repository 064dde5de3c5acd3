"""The study's results from its ratings: frame (the ratings, tidy) -> bootstrap (intervals) ->
summary (grade shares) -> headline (claims and verdicts), with agreement between raters; results
puts them together in StudyResults, and exports writes it out."""
