"""`ctcdoctor scan`: the length and label checks over a whole data set (`run`)."""
