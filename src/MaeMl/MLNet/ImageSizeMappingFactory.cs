using MaeMl.Detection;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;

namespace MaeMl.MLNet;

/// <summary>
/// The one piece of the detector's ML.NET chain that is not a built-in transformer: ML.NET has no transform that gives an
/// image's size, which the detector needs to return boxes in pixels of the original image. A <c>CustomMapping</c> with this
/// contract name writes (width, height) of <see cref="ImageColumn"/> to <see cref="DetectionOnnxNames.ImageSize"/>. A saved
/// model names MaeMl's assembly with the contract, and ML.NET's <c>Model.Load</c> registers it by itself (MaeMl.dll must be
/// loadable, as it is in any application that trains with MaeMl).
/// </summary>
[CustomMappingFactoryAttribute(ContractName)]
public sealed class ImageSizeMappingFactory : CustomMappingFactory<ImageSizeMappingFactory.Input, ImageSizeMappingFactory.Output>
{
    /// <summary>The contract name ML.NET stores in a saved model to find this mapping again (MaeMl.dll must be loadable).</summary>
    public const string ContractName = "MaeMl.ImageSize";
    /// <summary>The image column the mapping reads (the chain copies the user's image column to it).</summary>
    public const string ImageColumn = "MaeDetection.Image";

    /// <summary>The mapping's input row: one image.</summary>
    public sealed class Input
    {
        /// <summary>The image whose size is read.</summary>
        [ColumnName(ImageColumn), AnySizeImage]
        public MLImage? Image { get; set; }
    }

    /// <summary>The mapping's output row: the image size.</summary>
    public sealed class Output
    {
        /// <summary>(width, height) in pixels, what the exported dense graphs take to return original-image coordinates.</summary>
        [ColumnName(DetectionOnnxNames.ImageSize), VectorType(2)]
        public float[] Size { get; set; } = new float[2];
    }

    /// <summary>Writes the image's (width, height); an empty image row is an <see cref="InvalidDataException"/>.</summary>
    public static void Map(Input input, Output output)
    {
        var image = input.Image ?? throw new InvalidDataException("The image column holds no image");
        output.Size = [image.Width, image.Height];
    }

    /// <summary>The mapping ML.NET runs (<see cref="Map"/>).</summary>
    public override Action<Input, Output> GetMapping() => Map;

    /// <summary>Marks an <see cref="MLImage"/> member as an image of any size (what <c>LoadImages</c> produces). ML.NET 5.0.1's
    /// own <c>[ImageType]</c> without a size throws in <c>Register</c> (it builds <c>ImageDataViewType(0, 0)</c>, which rejects 0).</summary>
    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
    public sealed class AnySizeImageAttribute : DataViewTypeAttribute
    {
        /// <summary>All any-size image attributes are equal.</summary>
        public override bool Equals(DataViewTypeAttribute other) => other is AnySizeImageAttribute;
        /// <summary>A constant: all instances are equal.</summary>
        public override int GetHashCode() => typeof(AnySizeImageAttribute).GetHashCode();
        /// <summary>Registers <see cref="MLImage"/> as an image of unknown size.</summary>
        public override void Register() => DataViewTypeManager.Register(new ImageDataViewType(), typeof(MLImage), this);
    }
}
