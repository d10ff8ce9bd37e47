"""What the class report finds across students: :mod:`~coursekit.insight.failures`
(why tests fail, grouped) and :mod:`~coursekit.insight.similarity` (similar answers)."""
