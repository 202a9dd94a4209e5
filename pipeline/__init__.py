"""Ray stages, Common Crawl access, image download, writers, reports and publishing."""
