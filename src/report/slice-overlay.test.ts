import { describe, expect, it } from 'vitest'
import { defaceVolume } from '../deface/deface-volume.js'
import { makeHeadPhantom, phantomLabelMap, type HeadPhantom } from '../../test/phantom/head-phantom.js'
import { sagittalOverlay } from './slice-overlay.js'

function overlayOf(phantom: HeadPhantom) {
  const labels = phantomLabelMap(phantom)
  return sagittalOverlay(phantom.volume, defaceVolume(phantom.volume, labels).weight, labels)
}

describe('the mid-sagittal overlay', () => {
  it('shows the same slice, brain and removed region whatever the order and direction of the stored axes', () => {
    const ras = overlayOf(makeHeadPhantom({ contrast: 'T1', orientation: 'RAS', spacing: [2, 2, 2] }))
    const psl = overlayOf(makeHeadPhantom({ contrast: 'T1', orientation: 'PSL', spacing: [2, 2, 2] }))
    expect([psl.width, psl.height]).toEqual([ras.width, ras.height])
    expect(Buffer.from(psl.data).equals(Buffer.from(ras.data))).toBe(true)
    // The removed face is drawn in red in front of the brain (the face is on the image's left).
    let red = 0
    let green = 0
    for (let p = 0; p < ras.data.length; p += 3) {
      const [r, g, b] = [ras.data[p] as number, ras.data[p + 1] as number, ras.data[p + 2] as number]
      if (r > g + 60 && r > b + 60) red++
      if (g > r + 30 && g > b + 30) green++
    }
    expect(red).toBeGreaterThan(50)
    expect(green).toBeGreaterThan(500)
  })
})
