"""The networks: ``layers`` (registered custom Keras layers), ``models`` (generator, discriminator, VGG19 features)
and ``interpolation`` (blending two generators' weights)."""
