from assetline.cli import main

main()
