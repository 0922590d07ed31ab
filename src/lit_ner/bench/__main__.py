from lit_ner.bench.cli import main

main()
